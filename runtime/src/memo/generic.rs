//! The `static`s of a generic `#[cached]` function: one per instantiation.
//!
//! A `static` inside a generic function cannot name the function's type parameters, so a
//! generic function has one [`Instantiations`] (not generic) and finds its instantiation's
//! slot in it by the `TypeId` of its type arguments. The slot is then used exactly as a
//! non-generic function's own `static` is.

use std::any::{Any, TypeId};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

/// One instantiation: the `TypeId` of its type arguments and its slot.
type Slot = (TypeId, &'static (dyn Any + Send + Sync));

/// Instantiations found without a lock: a program calls a generic function with few types.
const INLINE: usize = 8;

/// The slots of a generic function, one per instantiation, each created on first use and kept
/// for the life of the process (as a `static` is). Not part of the stable API: `#[cached]`
/// declares one for each generic function.
#[doc(hidden)]
pub struct Instantiations {
    // Filled in order, under `adding`, and never emptied: a reader scans them with one atomic
    // load each and stops at the first empty one.
    inline: [OnceLock<Slot>; INLINE],
    more: RwLock<Vec<Slot>>,
    adding: Mutex<()>,
}

impl Instantiations {
    /// An empty table, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Instantiations {
            inline: [const { OnceLock::new() }; INLINE],
            more: RwLock::new(Vec::new()),
            adding: Mutex::new(()),
        }
    }

    /// The slot of the instantiation whose type arguments have the `TypeId` `marker`, created
    /// empty on first use. `T` is the handle type the slot holds; one marker always comes
    /// with one `T`, since both are fixed by the same type arguments.
    #[inline]
    pub fn slot<T: Send + Sync + 'static>(&'static self, marker: TypeId) -> &'static OnceLock<T> {
        match self.find(marker) {
            Some(slot) => downcast(slot),
            None => self.add(marker),
        }
    }

    #[inline]
    fn find(&self, marker: TypeId) -> Option<&'static (dyn Any + Send + Sync)> {
        for slot in &self.inline {
            match slot.get() {
                Some((id, slot)) if *id == marker => return Some(*slot),
                Some(_) => {}
                None => return None,
            }
        }
        let more = self.more.read();
        more.iter()
            .find(|(id, _)| *id == marker)
            .map(|(_, slot)| *slot)
    }

    #[cold]
    fn add<T: Send + Sync + 'static>(&'static self, marker: TypeId) -> &'static OnceLock<T> {
        let _adding = self.adding.lock();
        // Another thread may have added it since `find`.
        if let Some(slot) = self.find(marker) {
            return downcast(slot);
        }
        let slot: &'static OnceLock<T> = Box::leak(Box::new(OnceLock::new()));
        let entry: Slot = (marker, slot);
        match self.inline.iter().find(|free| free.get().is_none()) {
            Some(free) => {
                let _ = free.set(entry);
            }
            None => self.more.write().push(entry),
        }
        slot
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
    fn more_instantiations_than_the_inline_slots() {
        static MANY: Instantiations = Instantiations::new();
        fn slot<T: 'static>() -> &'static OnceLock<usize> {
            MANY.slot::<usize>(TypeId::of::<T>())
        }
        macro_rules! each {
            ($($ty:ty),*) => {{
                let mut index = 0;
                $( slot::<$ty>().set(index).unwrap(); index += 1; )*
                let _ = index;
                let mut expected = 0;
                $( assert_eq!(slot::<$ty>().get(), Some(&expected)); expected += 1; )*
                let _ = expected;
            }};
        }
        each!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, bool, char, String);
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
