//! yaml actions (placeholder).
