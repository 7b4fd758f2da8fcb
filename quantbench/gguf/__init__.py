"""GGUF files made with llama.cpp's own tools, for the llama.cpp engine.

A model's checkpoint is converted once to a full-precision (f32) GGUF with llama.cpp's converter
(`convert_hf_to_gguf.py`, from the llama-cpp-python source distribution of the installed version),
then quantized to each GGUF type with llama.cpp's quantizer through the binding's
`llama_model_quantize`; every file is cached, keyed by the model's weights, the type and the
llama.cpp version. `files.py` reads back what a file holds (tensor types, bits per weight).
"""
