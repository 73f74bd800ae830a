"""Using sentence embeddings: semantic search and zero-shot classification.

Both rest on one fact: a `SentenceEncoder` maps texts of similar meaning to nearby unit vectors,
so the cosine similarity cos(u, v) = u · v ranks texts by meaning, not by shared words.

Semantic search: embed the corpus once, embed the query, return the corpus texts with the
highest cosine similarity.

Zero-shot classification ("prompting" an encoder): describe each class in words, embed the
descriptions, and give each text the class whose description it is most similar to. No training
example is needed; a better description is the only knob.
"""

import torch

from fromscratch.errors import UserError
from fromscratch.language.bert import SentenceEncoder, normalize


def top_k(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k corpus rows most similar to each query: (scores, indices), each (Nq, k).

    queries (Nq, C) and corpus (N, C) are unit vectors (as `SentenceEncoder.encode` returns), so
    the dot product is the cosine similarity. k is capped at N.
    """
    scores = queries @ corpus.T  # (Nq, N): cos(query, text)
    return torch.topk(scores, min(k, corpus.shape[0]), dim=1)  # largest first


def search(
    encoder: SentenceEncoder,
    query: str,
    texts: list[str],
    *,
    k: int = 5,
    corpus_embeddings: torch.Tensor | None = None,
    batch_size: int = 32,
) -> list[tuple[float, int, str]]:
    """The k texts closest in meaning to `query`, best first, as (score, index, text).

    corpus_embeddings: `encoder.encode(texts)`, if you have it already (it is the slow part).
    """
    if not texts:
        raise UserError("the corpus is empty: give at least one text to search")
    if k < 1:
        raise UserError(f"k must be >= 1, got {k}")
    if corpus_embeddings is None:
        corpus_embeddings = encoder.encode(texts, batch_size=batch_size)
    scores, indices = top_k(encoder.encode([query]), corpus_embeddings, k)
    return [(s, i, texts[i]) for s, i in zip(scores[0].tolist(), indices[0].tolist(), strict=True)]


def label_prototypes(encoder: SentenceEncoder, label_descriptions: dict) -> torch.Tensor:
    """One unit vector per label (K, C): its description's embedding, or the normalized mean of
    its descriptions' embeddings when it has several."""
    if not label_descriptions:
        raise UserError("give at least one label with a description")
    prototypes = []
    for label, descriptions in label_descriptions.items():
        descriptions = [descriptions] if isinstance(descriptions, str) else list(descriptions)
        if not descriptions:
            raise UserError(f"label {label!r} has no description")
        prototypes.append(encoder.encode(descriptions).mean(dim=0))
    return normalize(torch.stack(prototypes))  # (K, C)


def zero_shot_scores(
    encoder: SentenceEncoder, texts: list[str], label_descriptions: dict, *, batch_size: int = 32
) -> torch.Tensor:
    """(N, K) cosine similarities between each text and each label's description(s)."""
    prototypes = label_prototypes(encoder, label_descriptions)  # (K, C)
    return encoder.encode(texts, batch_size=batch_size) @ prototypes.T  # (N, K)


def zero_shot_classify(
    encoder: SentenceEncoder, texts: list[str], label_descriptions: dict, *, batch_size: int = 32
) -> list:
    """The label of each text: the one whose description is most similar to it.

    label_descriptions: {label: description, ...}; a description may also be a list of
    descriptions (their mean embedding stands for the label).

    For example, with all-MiniLM-L6-v2,

        zero_shot_classify(encoder, ["WIN a free prize now!!!", "see you at 6?"],
                           {"spam": "an advertisement or scam", "ham": "a message from a friend"})

    gives ['spam', 'ham'] (tests/test_bert.py checks it on the SMS corpus).
    """
    labels = list(label_descriptions)
    scores = zero_shot_scores(encoder, texts, label_descriptions, batch_size=batch_size)
    return [labels[i] for i in scores.argmax(dim=1).tolist()]
