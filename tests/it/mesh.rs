//! Integration tests of the radio mesh.
