# The student alone, trained from scratch with the same data, recipe and model (the "student" reference of the
# tables): no teacher, no distiller. Pair-agnostic (merged by `model = {{_base_.method}}`).
method = dict(teachers=None, distillers=[])
