//! One namespace as this shim serves it: the module's commands for it, the
//! hub of this shim's connections in it, and its top rooms. A shim serves
//! one or more namespaces (`--namespace`); a page picks one by its WebSocket
//! path, `/ws/{namespace}`.

use crate::redis::Violet;
use crate::registry::Hub;
use crate::top::TopRooms;
use std::sync::Arc;

/// One namespace served.
pub struct Space {
    /// The module's commands, for this namespace.
    pub violet: Violet,
    /// This shim's connections in the namespace, fed by its events.
    pub hub: Arc<Hub>,
    /// The namespace's top rooms, one snapshot for every connection.
    pub top: Arc<TopRooms>,
}

impl Space {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        self.violet.namespace()
    }
}
