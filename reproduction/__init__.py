"""The reproduction of Bortsova et al. 2021 with medaudit: the run driver (`reproduce`), the typed view of the
committed runs (`runs`), the findings and their outcome rule (`findings`, `assess`) and the document (`document`).
"""
