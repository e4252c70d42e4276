"""medaudit: black-box adversarial transferability audits of medical-image classifiers."""

__version__ = "0.1.0"
