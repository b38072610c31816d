//! The original's dataset pipeline stages.
