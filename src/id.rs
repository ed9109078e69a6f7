//! The one pattern of the crate's ids: a UUID newtype with a random constructor and a 16-byte form (how storage
//! keeps it). Each id adds its own text form.

/// Declares a UUID newtype: `new` (random, version 4), `as_bytes`, `from_bytes`, `Default`, and the comparisons.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new random one.
            pub fn new() -> Self {
                $name(uuid::Uuid::new_v4())
            }

            /// Its 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// The one with these 16 bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(uuid::Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

pub(crate) use uuid_id;
