//! The pest parser generated from `grammar/rb6.pest`.
//!
//! The grammar only knows shapes (blocks, attributes, expressions); `parse` turns its pairs
//! into the syntax tree and `resolve` decides what the shapes mean.

use pest_derive::Parser;

/// Parser for `.rb6` files.
#[derive(Parser)]
#[grammar = "grammar/rb6.pest"]
pub struct Rb6Parser;
