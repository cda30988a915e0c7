//! HAL trait for the low-power radio (filled in with the mesh firmware).
