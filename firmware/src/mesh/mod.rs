//! Mesh firmware: RPL-style routing state machine and frame codecs.
