//! Durable state of a runbook's applies: the journal of step records and the lock.

pub mod journal;
pub mod lock;
pub mod records;
