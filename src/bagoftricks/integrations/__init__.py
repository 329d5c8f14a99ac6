"""The tricks where users already train: a Lightning callback
(``bagoftricks.integrations.lightning``) and a Hugging Face ``TrainerCallback``
(``bagoftricks.integrations.transformers``). Each imports its framework only when
imported itself; ``pip install bagoftricks[lightning]`` / ``[transformers]``."""
