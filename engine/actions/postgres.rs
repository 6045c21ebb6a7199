//! postgres actions (placeholder).
