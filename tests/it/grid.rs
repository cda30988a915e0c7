//! Integration tests of the grid physics against reference networks.
