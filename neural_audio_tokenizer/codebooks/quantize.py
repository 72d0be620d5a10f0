"""Residual vector quantization: features -> codes, one code per level (runtime side).

Follows the residual VQ of SoundStream (Zeghidour et al., 2021, Algorithm 1): level 0
quantizes the feature, each next level quantizes what the previous levels left over.
Codebooks are fitted offline by :mod:`neural_audio_tokenizer.codebooks.fit`.

The float computation is part of the token contract, so it is fixed here:
everything is float64; the distance to code ``c`` is ``||c||^2 - 2 r.c`` (``||r||^2`` is the
same for every code of a row and is dropped); ``argmin`` keeps the lowest index on ties.
"""

from __future__ import annotations

import numpy as np


def code_norms(codebooks: np.ndarray) -> np.ndarray:
    """``||c||^2`` per code, [levels, codes]; precompute once per pack."""
    return np.einsum("lkd,lkd->lk", codebooks, codebooks)


def quantize(
    features: np.ndarray, codebooks: np.ndarray, norms: np.ndarray | None = None, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Codes [frames, levels] (int64) for ``features`` [frames, dim] against [levels, codes, dim];
    ``exclude``: level-0 code indices none of these frames may take (the nearest other code is used)."""
    residual = np.array(features, dtype=np.float64, copy=True)
    books = np.asarray(codebooks, dtype=np.float64)
    if norms is None:
        norms = code_norms(books)
    codes = np.empty((residual.shape[0], books.shape[0]), dtype=np.int64)
    for level, book in enumerate(books):
        distance = norms[level][None, :] - 2.0 * (residual @ book.T)
        if level == 0 and exclude is not None:
            distance[:, exclude] = np.inf
        chosen = np.argmin(distance, axis=1)  # first minimum: ties go to the lowest index
        codes[:, level] = chosen
        residual -= book[chosen]
    return codes
