//! HAL trait for the LMU's storage (filled in with the LMU firmware).
