//! IAM policy grammar, validation and evaluation with AWS's semantics; does no I/O
