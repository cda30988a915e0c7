//! HAL trait for the LMU's contactor (filled in with the LMU firmware).
