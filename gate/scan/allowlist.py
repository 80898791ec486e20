"""The allowlist as data: which classes, functions and modules a model's config may name,
and which layers carry code. Static on purpose: importing Keras to build it would defeat
the point of the scan."""
from __future__ import annotations

import re

_LAYERS = frozenset("""
    Activation ActivityRegularization Add AdditiveAttention AlphaDropout Attention Average
    AveragePooling1D AveragePooling2D AveragePooling3D AvgPool1D AvgPool2D AvgPool3D
    BatchNormalization Bidirectional CategoryEncoding CenterCrop Concatenate
    Conv1D Conv1DTranspose Conv2D Conv2DTranspose Conv3D Conv3DTranspose
    ConvLSTM1D ConvLSTM2D ConvLSTM3D Convolution1D Convolution1DTranspose Convolution2D
    Convolution2DTranspose Convolution3D Convolution3DTranspose
    Cropping1D Cropping2D Cropping3D Dense DepthwiseConv1D DepthwiseConv2D Discretization
    Dot Dropout ELU EinsumDense Embedding Flatten GRU GRUCell GaussianDropout GaussianNoise
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D GlobalMaxPool1D GlobalMaxPool2D
    GlobalMaxPool3D GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
    GroupNormalization HashedCrossing Hashing Identity InputLayer IntegerLookup LSTM LSTMCell
    LayerNormalization LeakyReLU LocallyConnected1D LocallyConnected2D Masking
    MaxPool1D MaxPool2D MaxPool3D MaxPooling1D MaxPooling2D MaxPooling3D Maximum Minimum
    MultiHeadAttention Multiply Normalization PReLU Permute RNN RandomBrightness
    RandomContrast RandomCrop RandomFlip RandomFourierFeatures RandomHeight RandomRotation
    RandomTranslation RandomWidth RandomZoom ReLU RepeatVector Rescaling Reshape Resizing
    SeparableConv1D SeparableConv2D SeparableConvolution1D SeparableConvolution2D
    SimpleRNN SimpleRNNCell Softmax SpatialDropout1D SpatialDropout2D SpatialDropout3D
    SpectralNormalization StackedRNNCells StringLookup Subtract SyncBatchNormalization
    TextVectorization ThresholdedReLU TimeDistributed UnitNormalization
    UpSampling1D UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
    LayerScale StochasticDepth
""".split())  # the last two are tf_keras.applications.convnext building blocks

_MODELS = frozenset({"Sequential", "Functional", "Model"})

_TFMOT = frozenset("""
    PruneLowMagnitude ConstantSparsity PolynomialDecay
    ClusterWeights ClusterWeightsMHA ClusterWeightsRNN
    QuantizeWrapper QuantizeWrapperV2 QuantizeLayer QuantizeAnnotate
    QuantizeAwareActivation NoOpActivation OutputOnlyConfig FixedQuantizeConfig
    AllValuesQuantizer FixedQuantizer LastValueQuantizer MovingAverageQuantizer NoQuantizer
    Default8BitQuantizeConfig Default8BitConvQuantizeConfig Default8BitOutputQuantizeConfig
    Default8BitActivationQuantizeConfig Default8BitConvTransposeQuantizeConfig
    Default8BitQuantizeConfigRNN NoOpQuantizeConfig
    DefaultNBitQuantizeConfig DefaultNBitConvQuantizeConfig DefaultNBitOutputQuantizeConfig
    DefaultNBitActivationQuantizeConfig DefaultNBitConvTransposeQuantizeConfig
    DefaultNBitQuantizeConfigRNN
    ClusterPreserveDefault8BitConvWeightsQuantizer ClusterPreserveDefault8BitWeightsQuantizer
    ClusterPreserveDefaultWeightsQuantizer PrunePreserveDefault8BitConvWeightsQuantizer
    PrunePreserveDefault8BitWeightsQuantizer PrunePreserveDefaultWeightsQuantizer
""".split())

_INITIALIZERS = frozenset("""
    Constant GlorotNormal GlorotUniform HeNormal HeUniform Identity LecunNormal LecunUniform
    Ones Orthogonal RandomNormal RandomUniform TruncatedNormal VarianceScaling Zeros
    constant glorot_normal glorot_uniform he_normal he_uniform identity lecun_normal
    lecun_uniform ones orthogonal random_normal random_uniform truncated_normal
    variance_scaling zeros
""".split())

_REGULARIZERS_CONSTRAINTS = frozenset("""
    L1 L2 L1L2 OrthogonalRegularizer l1 l2 l1_l2 orthogonal_regularizer
    MaxNorm MinMaxNorm NonNeg RadialConstraint UnitNorm
    max_norm min_max_norm non_neg radial_constraint unit_norm
""".split())

_TRAINING = frozenset("""
    SGD Adam AdamW Adamax Adadelta Adafactor Adagrad Ftrl Lion Nadam RMSprop
    LossScaleOptimizer Policy
    CosineDecay CosineDecayRestarts ExponentialDecay InverseTimeDecay PiecewiseConstantDecay
    BinaryCrossentropy BinaryFocalCrossentropy CategoricalCrossentropy
    CategoricalFocalCrossentropy CategoricalHinge CosineSimilarity Hinge Huber KLDivergence
    LogCosh MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredError
    MeanSquaredLogarithmicError Poisson SparseCategoricalCrossentropy SquaredHinge
    AUC Accuracy BinaryAccuracy BinaryIoU CategoricalAccuracy F1Score FBetaScore
    FalseNegatives FalsePositives IoU LogCoshError Mean MeanIoU MeanMetricWrapper
    MeanRelativeError MeanTensor OneHotIoU OneHotMeanIoU Precision PrecisionAtRecall
    R2Score Recall RecallAtPrecision RootMeanSquaredError SensitivityAtSpecificity
    SparseCategoricalAccuracy SparseTopKCategoricalAccuracy SpecificityAtSensitivity Sum
    TopKCategoricalAccuracy TrueNegatives TruePositives
""".split())

ALLOWED_CLASSES: frozenset[str] = (_LAYERS | _MODELS | _TFMOT | _INITIALIZERS
                                   | _REGULARIZERS_CONSTRAINTS | _TRAINING)

# Built-in functions a {"class_name": "function", "config": NAME} reference may name.
BUILTIN_FUNCTIONS = frozenset("""
    elu exponential gelu hard_sigmoid hard_silu hard_swish leaky_relu linear log_softmax
    mish relu relu6 selu sigmoid silu softmax softplus softsign swish tanh
    KLD MAE MAPE MSE MSLE binary_accuracy binary_crossentropy binary_focal_crossentropy
    categorical_accuracy categorical_crossentropy categorical_focal_crossentropy
    categorical_hinge cosine_similarity hinge huber kl_divergence kld
    kullback_leibler_divergence log_cosh logcosh mae mape mean_absolute_error
    mean_absolute_percentage_error mean_squared_error mean_squared_logarithmic_error mse
    msle poisson sparse_categorical_accuracy sparse_categorical_crossentropy
    sparse_top_k_categorical_accuracy squared_hinge top_k_categorical_accuracy
""".split())

# Layers that carry code. Refused unless the base branch sets trust_model_code.
CODE_LAYERS: dict[str, str] = {
    "Lambda": "Lambda layers run arbitrary Python code when loaded",
    "TFOpLambda": ("TFOpLambda layers call whichever TensorFlow function the file names "
                   "(e.g. tf.io.write_file) when the model is rebuilt"),
    "SlicingOpLambda": ("SlicingOpLambda layers call whichever TensorFlow function the file "
                        "names when the model is rebuilt"),
}

# Refused always: Keras 3 layers that wrap foreign code or files; tf_keras cannot load them.
FOREIGN_LAYERS: dict[str, str] = {
    "TFSMLayer": "TFSMLayer loads and runs a SavedModel from a path outside the file",
    "TorchModuleWrapper": "TorchModuleWrapper unpickles a PyTorch module (arbitrary code)",
    "JaxLayer": "JaxLayer wraps arbitrary Python functions",
    "FlaxLayer": "FlaxLayer wraps arbitrary Python code",
}

# TFOpLambda layers whose TensorFlow function is pure elementwise arithmetic: data, not
# code. tf_keras rebuilds a TFOpLambda by looking its `function` up among TensorFlow's
# exported names (any name works, tf.io.write_file included), so only these exact names
# pass, and only with operands that are tensors of the graph or plain numbers
# (config_tree checks the call's arguments). Each is an elementwise op with no I/O, no
# state and no Python callback; they are what Python operators and the common activation
# helpers on a KerasTensor serialize to (`x + 3` -> __operators__.add, `x * c` ->
# math.multiply, `x - c` -> math.subtract, `x / c` -> math.truediv, `-x` -> math.negative).
# Stock tf_keras.applications.MobileNetV3 writes its hard-swish with the first two.
PURE_TF_FUNCTIONS: dict[str, str] = {
    "__operators__.add": "x + y",
    "math.add": "x + y",
    "math.subtract": "x - y",
    "math.multiply": "x * y",
    "math.truediv": "x / y",
    "math.negative": "-x",
    "math.maximum": "max(x, y)",
    "math.minimum": "min(x, y)",
    "nn.relu": "max(x, 0)",
    "nn.relu6": "min(max(x, 0), 6)",
    "math.sigmoid": "1 / (1 + exp(-x))",
    "math.tanh": "tanh(x)",
}
# Call keyword arguments a pure TFOpLambda may carry besides operands.
PURE_TF_NAME_KWARG = "name"

# Data markers Keras decodes into values, not classes.
DATA_MARKERS = frozenset({"__tensor__", "__numpy__", "__bytes__", "__tuple__",
                           "__ellipsis__", "TensorShape"})
TYPE_SPECS = frozenset({"TensorSpec", "RaggedTensorSpec", "SparseTensorSpec"})

# Dict keys that hold (references to) Python code, anywhere in a config.
CODE_KEYS = frozenset({"function", "function_type", "__lambda__", "__python_function__"})

ALLOWED_MODULE_ROOTS = ("keras", "tf_keras", "tensorflow_model_optimization")
# Exact modules outside those roots that built-in applications write (EfficientNetV2
# serializes tf.constant_initializer as tensorflow.python.ops.init_ops_v2.Constant).
ALLOWED_EXACT_MODULES = frozenset({"tensorflow.python.ops.init_ops_v2"})

# Keys under which a config nests a layer (counted for n_layers / layer_classes).
LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer",
                        "cell", "cells"})

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REGISTERED_PACKAGES = frozenset({"Custom", "keras", "tf_keras"})

