//! Reports of a template scan: text, JSON, SARIF 2.1.0.
