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
