//! The Lambda Runtime API each instance talks to
