"""The building blocks that touch a model (TensorFlow and LiteRT, imported lazily; tfenv is
the only place TensorFlow itself is imported): load, data, convert, evaluate, the LiteRT
interpreter, the benchmark, proxies, sizes."""
