//! The `static`s of a generic `#[cached]` function: one per instantiation.
//!
//! A `static` inside a generic function cannot name the function's type parameters, so a
//! generic function has one [`Instantiations`] (not generic) and finds its instantiation's
//! slot in it by the `TypeId` of its type arguments. The slot is then used exactly as a
//! non-generic function's own `static` is.

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use parking_lot::RwLock;

/// The slots of a generic function, one per instantiation, each created on first use and kept
/// for the life of the process (as a `static` is). Not part of the stable API: `#[cached]`
/// declares one for each generic function.
#[doc(hidden)]
pub struct Instantiations {
    // Few entries (one per type a program calls the function with): a scan beats hashing.
    slots: RwLock<Vec<(TypeId, &'static (dyn Any + Send + Sync))>>,
}

impl Instantiations {
    /// An empty table, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Instantiations {
            slots: RwLock::new(Vec::new()),
        }
    }

    /// The slot of the instantiation whose type arguments have the `TypeId` `marker`, created
    /// empty on first use. `T` is the handle type the slot holds; one marker always comes
    /// with one `T`, since both are fixed by the same type arguments.
    pub fn slot<T: Send + Sync + 'static>(&'static self, marker: TypeId) -> &'static OnceLock<T> {
        if let Some(slot) = self.find(marker) {
            return downcast(slot);
        }
        let mut slots = self.slots.write();
        // Another thread may have made it between the two locks.
        if let Some((_, slot)) = slots.iter().find(|(id, _)| *id == marker) {
            return downcast(*slot);
        }
        let slot: &'static OnceLock<T> = Box::leak(Box::new(OnceLock::new()));
        slots.push((marker, slot));
        slot
    }

    fn find(&self, marker: TypeId) -> Option<&'static (dyn Any + Send + Sync)> {
        let slots = self.slots.read();
        slots
            .iter()
            .find(|(id, _)| *id == marker)
            .map(|(_, slot)| *slot)
    }
}

fn downcast<T: Send + Sync + 'static>(
    slot: &'static (dyn Any + Send + Sync),
) -> &'static OnceLock<T> {
    match slot.downcast_ref::<OnceLock<T>>() {
        Some(slot) => slot,
        // Both come from the type arguments of one function: a mismatch is a bug in the macro.
        None => unreachable!(
            "one instantiation of a generic #[cached] function holds another handle type"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: Instantiations = Instantiations::new();

    fn slot_of<T: 'static>() -> &'static OnceLock<String> {
        TABLE.slot::<String>(TypeId::of::<T>())
    }

    #[test]
    fn one_slot_per_marker_kept_for_good() {
        let a = slot_of::<u8>();
        let b = slot_of::<u16>();
        assert!(!std::ptr::eq(a, b));
        assert!(std::ptr::eq(a, slot_of::<u8>()));
        a.set("u8".to_owned()).unwrap();
        assert_eq!(slot_of::<u8>().get().map(String::as_str), Some("u8"));
        assert!(slot_of::<u16>().get().is_none());
    }

    #[test]
    fn threads_racing_for_a_new_marker_get_one_slot() {
        struct Raced;
        let slots: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| slot_of::<Raced>() as *const _ as usize))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        assert!(slots.windows(2).all(|pair| pair[0] == pair[1]));
    }
}
