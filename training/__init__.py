"""Two-tower training, evaluation and export (issue 6).

Entry points: :func:`training.run.train_day`, :func:`training.run.evaluate_day`,
:func:`training.evaluate.evaluate_model_dir`. Nothing heavy is imported here.
"""
