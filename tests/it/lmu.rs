//! Integration tests of the LMU firmware and twins.
