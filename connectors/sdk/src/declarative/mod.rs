//! Declarative mapping of text cells (file exports, database rows) into
//! canonical rows: which column feeds which field, how each cell is parsed
//! (Chinese dates, yuan, durations, phones), and value maps into our
//! vocabularies. Used by file imports and the CRM database connector.

pub mod cells;
pub mod mapping;

pub use mapping::{ColumnSpec, CostRule, FieldProblem, Mapped, MappingError, Parser, RowMapper};
