"""GitHub integration without TensorFlow: event payloads, workflow commands, REST client
and the sticky PR comment.

Modules are imported directly (gate.github.actions, .event, .client, .comment) so that
writing an output never pulls in the HTTP stack.
"""
