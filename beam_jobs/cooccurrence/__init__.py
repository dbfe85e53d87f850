"""Text corpus -> vocabulary, co-occurrence matrix, PPMI and SVD word vectors (Beam).

See docs/cooccurrence.md. Entry points: ``python -m beam_jobs.cooccurrence`` (the job) and
``python -m beam_jobs.cooccurrence.evaluate`` (scores against gensim Word2Vec).
"""
