"""Export a trained model for other runtimes: GGUF for llama.cpp, Ollama and the browser.

- `gguf`: llama.cpp's own converter and quantizer, pinned, plus the tokenizer and chat-template keys.
- `verify`: the parity checks every export passes (template, tokenizer, stop token, greedy generation).
- `modelfile`: the Ollama Modelfile and the model card that travel with the file.
"""
