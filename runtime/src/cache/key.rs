//! The key a load is asked for, in the form its caller holds it: borrowed arguments are looked
//! up as they are, and the cache's owned key is built only on a miss, where it is stored.
//!
//! A [`LookupKey<K>`] hashes exactly as the owned key `K` it stands for and is
//! [`Equivalent`] to it, so a hit finds the entry without building `K`: a `#[cached]`
//! function of `&str` hashes and compares the `&str`, and allocates no `String` to find its
//! value. A leaf: it imports nothing of the crate.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use equivalent::Equivalent;

/// A key in the form the caller holds it, standing for the owned key `K` of a cache: it hashes
/// as `K` does and is [`Equivalent`] to it (a lookup needs nothing more), and
/// [`into_key`](LookupKey::into_key) builds the `K` when one must be stored (a miss). Used by
/// the code `#[cached]` generates; not part of the stable API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the key built from the arguments does not match the cache's key type `{K}`",
    label = "this key is not a `{K}`",
    note = "with `key = …`, `key_type` is the type of that expression, owned (`String` for a `&str`, a tuple for several); with `instance = field`, the field is a `Memo<K, V>` whose `K` is that key"
)]
pub trait LookupKey<K>: Hash + Equivalent<K> {
    /// The owned key.
    fn into_key(self) -> K;
}

/// An owned key (or part of one), used as it is.
#[doc(hidden)]
pub struct Owned<K>(pub K);

impl<K: Hash> Hash for Owned<K> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<K: Eq> Equivalent<K> for Owned<K> {
    #[inline]
    fn equivalent(&self, key: &K) -> bool {
        self.0 == *key
    }
}

impl<K: Hash + Eq> LookupKey<K> for Owned<K> {
    #[inline]
    fn into_key(self) -> K {
        self.0
    }
}

/// A borrowed argument (or part of a key): `&str` standing for a `String`, `&[T]` for a
/// `Vec<T>`, `&T` for a `T`. It hashes and compares as the borrowed value, which `Borrow`'s
/// contract makes agree with the owned one, and is copied into the owned key
/// (`ToOwned::to_owned`) only by [`LookupKey::into_key`].
#[doc(hidden)]
pub struct Borrowed<'a, B: ?Sized>(pub &'a B);

impl<B: Hash + ?Sized> Hash for Borrowed<'_, B> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<B: ToOwned + Eq + ?Sized> Equivalent<B::Owned> for Borrowed<'_, B> {
    #[inline]
    fn equivalent(&self, key: &B::Owned) -> bool {
        *self.0 == *key.borrow()
    }
}

impl<B: ToOwned + Hash + Eq + ?Sized> LookupKey<B::Owned> for Borrowed<'_, B>
where
    B::Owned: Hash + Eq,
{
    #[inline]
    fn into_key(self) -> B::Owned {
        self.0.to_owned()
    }
}

/// A key of several arguments: a tuple of parts ([`Borrowed`] or [`Owned`]) standing for the
/// tuple of their owned keys. It hashes its parts in order, as the standard library's `Hash`
/// of a tuple hashes its fields, so `Args((Borrowed("a"), Owned(1u32)))` hashes as
/// `("a".to_string(), 1u32)`.
#[doc(hidden)]
pub struct Args<T>(pub T);

macro_rules! args {
    ($(($part:ident, $key:ident, $index:tt)),+) => {
        impl<$($part: Hash),+> Hash for Args<($($part,)+)> {
            #[inline]
            fn hash<H: Hasher>(&self, state: &mut H) {
                $(self.0.$index.hash(state);)+
            }
        }

        impl<$($part, $key),+> Equivalent<($($key,)+)> for Args<($($part,)+)>
        where
            $($part: Equivalent<$key>),+
        {
            #[inline]
            fn equivalent(&self, key: &($($key,)+)) -> bool {
                $(self.0.$index.equivalent(&key.$index))&&+
            }
        }

        impl<$($part, $key),+> LookupKey<($($key,)+)> for Args<($($part,)+)>
        where
            $($part: LookupKey<$key>),+
        {
            #[inline]
            fn into_key(self) -> ($($key,)+) {
                ($(self.0.$index.into_key(),)+)
            }
        }
    };
}

/// A function without arguments: its key is `()`, which hashes as nothing (writes nothing).
impl Hash for Args<()> {
    #[inline]
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl Equivalent<()> for Args<()> {
    #[inline]
    fn equivalent(&self, _: &()) -> bool {
        true
    }
}

impl LookupKey<()> for Args<()> {
    #[inline]
    fn into_key(self) {}
}

// One `args!` per tuple length, 1 to 12: as many arguments as the standard library implements
// `Hash` for tuples of.
macro_rules! args_for_each_length {
    ([$($done:tt),*]; $next:tt $(, $rest:tt)*) => {
        args!($($done,)* $next);
        args_for_each_length!([$($done,)* $next]; $($rest),*);
    };
    ([$($done:tt),*];) => {};
}

args_for_each_length!(
    [];
    (P0, K0, 0),
    (P1, K1, 1),
    (P2, K2, 2),
    (P3, K3, 3),
    (P4, K4, 4),
    (P5, K5, 5),
    (P6, K6, 6),
    (P7, K7, 7),
    (P8, K8, 8),
    (P9, K9, 9),
    (P10, K10, 10),
    (P11, K11, 11)
);

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(value)
    }

    #[test]
    fn each_form_hashes_and_compares_as_its_owned_key() {
        let name = String::from("ann");
        let bytes = vec![1u8, 2, 3];

        let borrowed = Borrowed(name.as_str());
        assert_eq!(hash_of(&borrowed), hash_of(&name));
        assert!(borrowed.equivalent(&name) && !borrowed.equivalent(&"bob".to_string()));
        assert_eq!(borrowed.into_key(), name);

        let slice = Borrowed(bytes.as_slice());
        assert_eq!(hash_of(&slice), hash_of(&bytes));
        assert!(slice.equivalent(&bytes) && !slice.equivalent(&vec![1, 2]));
        assert_eq!(slice.into_key(), bytes);

        let owned = Owned(7u64);
        assert_eq!(hash_of(&owned), hash_of(&7u64));
        assert!(owned.equivalent(&7) && !owned.equivalent(&8));
        assert_eq!(owned.into_key(), 7);
    }

    #[test]
    fn arguments_hash_and_compare_as_the_tuple_of_their_owned_keys() {
        let key = ("ann".to_string(), 7u32);
        let args = Args((Borrowed("ann"), Owned(7u32)));
        // The standard library's `Hash` of a tuple hashes its fields in order, with nothing
        // around them: a `(&str, u32)` and a `(String, u32)` hash alike.
        assert_eq!(hash_of(&("ann", 7u32)), hash_of(&key));
        assert_eq!(hash_of(&args), hash_of(&key));
        assert!(args.equivalent(&key));
        assert!(!args.equivalent(&("ann".to_string(), 8)));
        assert!(!args.equivalent(&("bob".to_string(), 7)));
        assert_eq!(args.into_key(), key);

        let none = Args(());
        assert_eq!(hash_of(&none), hash_of(&()));
        assert!(none.equivalent(&()));

        let one = Args((Borrowed(&[1u8, 2][..]),));
        assert_eq!(hash_of(&one), hash_of(&(vec![1u8, 2],)));
        assert_eq!(one.into_key(), (vec![1u8, 2],));

        // Fields do not run into each other: ("ab", "c") is not ("a", "bc").
        let split = Args((Borrowed("ab"), Borrowed("c")));
        let other = ("a".to_string(), "bc".to_string());
        assert_ne!(hash_of(&split), hash_of(&other));
        assert!(!split.equivalent(&other));
    }
}
