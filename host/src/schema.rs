//! The API's string enums. One list of values serves both validation (`Fields::opt_enum`) and the OpenAPI
//! document, so what the server accepts and what it documents are the same list.

/// `api_enum!(Name = CONST ["A", "B"])` defines `const CONST: &[&str]` and a schema type `Name`: a string
/// that is one of the values.
#[macro_export]
macro_rules! api_enum {
    ($(#[$doc:meta])* $vis:vis $name:ident = $values:ident [$($value:literal),+ $(,)?]) => {
        $vis const $values: &[&str] = &[$($value),+];

        $(#[$doc])*
        $vis struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some($values.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// A closed set of words on the wire, as `vocabulary!` defines them; validation reads any of them.
pub trait Vocabulary: Sized + Copy + 'static {
    const NAMES: &'static [&'static str];
    fn parse(text: &str) -> Option<Self>;
    /// What a missing or invalid required field reads as; the request is refused before it is used.
    fn placeholder() -> Self;
}

/// `vocabulary!(pub enum Name { Variant = "TEXT", … })` defines a real enum from one list: its wire and
/// column text (serde and `sqlx::Type`, stored as `text`), its schema, `Name::NAMES` for validation and
/// `as_str`. Use it for statuses, modes and kinds that code matches on.
#[macro_export]
macro_rules! vocabulary {
    ($(#[$doc:meta])* $vis:vis enum $name:ident {
        $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)?
    }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
            sqlx::Type,
        )]
        #[sqlx(type_name = "text")]
        $vis enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] #[sqlx(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value's text, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value whose text this is.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        // By hand: the derive does not read a `rename` that a macro passes in.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some($name::NAMES.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $crate::schema::Vocabulary for $name {
            const NAMES: &'static [&'static str] = $name::NAMES;

            fn parse(text: &str) -> Option<Self> {
                $name::parse(text)
            }

            fn placeholder() -> Self {
                [$($name::$variant),+][0]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
