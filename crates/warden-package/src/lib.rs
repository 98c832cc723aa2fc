//! Function packages: safe, bounded zip extraction and zipping of a directory
