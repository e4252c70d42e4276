"""The reproduction of Bortsova et al. 2021 with medaudit.

Runs: `python -m reproduction.reproduce MODALITY` (`reproduce`, with the fixed `different` rule of `protocol`) and
`python -m reproduction.epsilon_examples MODALITY`. Document: `python -m reproduction.document --data DIR` renders
`docs/reproduction.md` and `docs/reproduction/appendix.md` from the committed runs, read through `record`'s narrow
view of schema 2.0 and 3.0 (`runs`), judged by the one outcome rule of `assess` on the comparisons of `findings`.
"""
