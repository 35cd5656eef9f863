"""Two-tower training, evaluation and export.

Entry points (each takes a ``core.context.RunContext``): :func:`training.train.train_day`,
:func:`training.evaluate.evaluate_day`, :func:`training.final_training.train_final_day`, and
:func:`training.evaluate.evaluate_model_dir` for any exported model. Nothing heavy is imported
here.
"""
