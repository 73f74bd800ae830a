"""Reference solution to lesson 01's exercise (tokenization).

Try the exercise first; `fromscratch lessons solution bpe_merge` prints it.
"""


def bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids`, scanning left to right, by `new_id`.

    >>> bpe_merge([5, 6, 5, 6, 7], (5, 6), 99)
    [99, 99, 7]
    >>> bpe_merge([1, 1, 1], (1, 1), 9)  # occurrences overlap: the leftmost wins
    [9, 1]
    """
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            merged.append(new_id)
            i += 2  # both ids of the pair are used up
        else:
            merged.append(ids[i])
            i += 1
    return merged
