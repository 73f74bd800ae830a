"""Language models: the decoder that writes text, the encoder that reads it, and what is built on
them.

    gpt.py        GPT-2 block by block, its KV-cache generation and the sampling filters
    gguf.py       llama.cpp's GGUF files read: 4- and 8-bit blocks decoded, Hugging Face names
    bert.py       BERT / MiniLM encoders and sentence embeddings (SentenceEncoder)
    lora.py       low-rank adapters added to any linear layer, saved and merged
    classify.py   an encoder fine-tuned as a text classifier (full or LoRA)
    retrieval.py  semantic search and zero-shot classification with sentence embeddings
    recipes.py    the GPT track's named training recipes (`--recipe`)
"""
