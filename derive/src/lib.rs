//! `#[derive(Trace)]` for pyheap.
//!
//! The generated impl reports every field to the tracer (so it reports exactly the `Gc`
//! handles the value owns, each once, which is what makes the derive always sound), skips
//! fields marked `#[trace(skip)]`, adds a `Trace` bound to every type parameter used by a
//! traced field, and computes `MAY_CONTAIN_GC` as the OR of the traced fields' constants
//! (`false` when there is no traced field). Unions are rejected: the derive cannot know
//! which field is live.
//!
//! Use it through the re-export `pyheap::Trace`; see that trait for examples.
//!
//! Attributes:
//! - `#[trace(skip)]` on a field: not traced, and its type need not implement `Trace`.
//! - `#[trace(crate = "path")]` on the type: the path of the pyheap crate in the generated
//!   code, for crates that use pyheap under another name (a renamed dependency,
//!   `my_pyheap = { package = "pyheap", .. }`) or through a re-export
//!   (`#[trace(crate = "my_runtime::pyheap")]`). The default is `::pyheap`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::visit::Visit;
use syn::{parse_macro_input, Data, DeriveInput, Fields, Ident, Type};

/// Derive `pyheap::Trace`. Fields marked `#[trace(skip)]` are neither traced nor required
/// to implement `Trace`; a skipped field must not own a `Gc` that could be part of a cycle
/// (skipping only ever leaks, never frees too early). `#[trace(crate = "path")]` on the type
/// names the pyheap crate when it is not `::pyheap` (a renamed dependency or a re-export).
#[proc_macro_derive(Trace, attributes(trace))]
pub fn derive_trace(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Whether the field carries `#[trace(skip)]`; any other `#[trace(..)]` content is an error.
fn is_skipped(attrs: &[syn::Attribute]) -> syn::Result<bool> {
    let mut skip = false;
    for attr in attrs {
        if !attr.path().is_ident("trace") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else if meta.path.is_ident("crate") {
                Err(meta.error("`#[trace(crate = \"..\")]` goes on the type, not on a field"))
            } else {
                Err(meta.error("unknown trace attribute: the only one is `#[trace(skip)]`"))
            }
        })?;
    }
    Ok(skip)
}

/// The path of the pyheap crate: `#[trace(crate = "path")]` on the type, else `::pyheap`. Any
/// other `#[trace(..)]` content on the type is an error.
fn crate_path(attrs: &[syn::Attribute]) -> syn::Result<syn::Path> {
    let mut path = None;
    for attr in attrs {
        if !attr.path().is_ident("trace") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                if path.is_some() {
                    return Err(meta.error("`crate` is given twice"));
                }
                let lit: syn::LitStr = meta.value()?.parse()?;
                path = Some(lit.parse::<syn::Path>()?);
                Ok(())
            } else if meta.path.is_ident("skip") {
                Err(meta.error("#[trace(skip)] goes on fields, not on the type"))
            } else {
                Err(meta.error(
                    "unknown trace attribute: on the type, the only one is \
                     `#[trace(crate = \"path::to::pyheap\")]`",
                ))
            }
        })?;
    }
    Ok(path.unwrap_or_else(|| syn::parse_quote!(::pyheap)))
}

/// Collects the names of the type parameters that occur in a type.
struct ParamUse<'a> {
    params: &'a [Ident],
    used: Vec<bool>,
}

impl<'ast> Visit<'ast> for ParamUse<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some(first) = path.segments.first() {
            for (i, p) in self.params.iter().enumerate() {
                if first.ident == *p {
                    self.used[i] = true;
                }
            }
        }
        syn::visit::visit_path(self, path);
    }
}

/// One traced field: the expression naming it in the match arm and its type.
struct Traced<'a> {
    binding: Ident,
    ty: &'a Type,
}

/// The match pattern for one variant (or the struct) and its traced fields.
fn fields_pattern<'a>(
    fields: &'a Fields,
    path: TokenStream2,
) -> syn::Result<(TokenStream2, Vec<Traced<'a>>)> {
    let mut traced = Vec::new();
    let pat = match fields {
        Fields::Named(named) => {
            let mut parts = Vec::new();
            for f in &named.named {
                let name = f.ident.as_ref().expect("named field has a name");
                if is_skipped(&f.attrs)? {
                    continue;
                }
                let binding = format_ident!("__field_{}", name);
                parts.push(quote!(#name: #binding));
                traced.push(Traced { binding, ty: &f.ty });
            }
            quote!(#path { #(#parts,)* .. })
        }
        Fields::Unnamed(unnamed) => {
            let mut parts = Vec::new();
            for (i, f) in unnamed.unnamed.iter().enumerate() {
                if is_skipped(&f.attrs)? {
                    parts.push(quote!(_));
                    continue;
                }
                let binding = format_ident!("__field_{}", i);
                parts.push(quote!(#binding));
                traced.push(Traced { binding, ty: &f.ty });
            }
            quote!(#path ( #(#parts,)* ))
        }
        Fields::Unit => quote!(#path),
    };
    Ok((pat, traced))
}

fn expand(mut input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = input.ident.clone();
    let krate = crate_path(&input.attrs)?;
    let mut arms = Vec::new();
    let mut all_traced_types: Vec<Type> = Vec::new();
    match &input.data {
        Data::Struct(s) => {
            let (pat, traced) = fields_pattern(&s.fields, quote!(Self))?;
            let calls = traced.iter().map(|t| {
                let b = &t.binding;
                quote!(#krate::Trace::trace(#b, __tracer);)
            });
            arms.push(quote!(#pat => { #(#calls)* }));
            all_traced_types.extend(traced.iter().map(|t| t.ty.clone()));
        }
        Data::Enum(e) => {
            for v in &e.variants {
                if is_skipped(&v.attrs)? {
                    return Err(syn::Error::new_spanned(
                        &v.ident,
                        "#[trace(skip)] goes on fields, not on variants",
                    ));
                }
                let vname = &v.ident;
                let (pat, traced) = fields_pattern(&v.fields, quote!(Self::#vname))?;
                let calls = traced.iter().map(|t| {
                    let b = &t.binding;
                    quote!(#krate::Trace::trace(#b, __tracer);)
                });
                arms.push(quote!(#pat => { #(#calls)* }));
                all_traced_types.extend(traced.iter().map(|t| t.ty.clone()));
            }
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(Trace)] cannot be used on a union: it cannot know which field is live; \
                 write an `unsafe impl Trace` by hand",
            ));
        }
    }

    // Bound every type parameter that a traced field uses.
    let params: Vec<Ident> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let mut uses = ParamUse {
        params: &params,
        used: vec![false; params.len()],
    };
    for ty in &all_traced_types {
        uses.visit_type(ty);
    }
    let used = uses.used;
    for (tp, used) in input.generics.type_params_mut().zip(used) {
        if used {
            tp.bounds.push(syn::parse_quote!(#krate::Trace));
        }
    }
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();

    // `|`, not `||`: every field's constant is evaluated, so a field whose constant is a
    // compile error (`Cell<T>` of a `T` that may hold a `Gc`) is caught even after a field
    // that makes the OR true.
    let may = if all_traced_types.is_empty() {
        quote!(false)
    } else {
        let parts = all_traced_types
            .iter()
            .map(|t| quote!(<#t as #krate::Trace>::MAY_CONTAIN_GC));
        quote!(#(#parts)|*)
    };
    let tracer = Ident::new("__tracer", Span::call_site());
    let body = if arms.is_empty() {
        // An enum with no variants has no value to trace.
        quote!(match *self {})
    } else {
        quote!(#[allow(unused_variables)] match self { #(#arms)* })
    };
    Ok(quote! {
        // SAFETY: the generated `trace` reports every non-skipped field exactly once through
        // that field's own `Trace` impl, and reports nothing else.
        #[automatically_derived]
        unsafe impl #impl_g #krate::Trace for #name #ty_g #where_c {
            #[inline]
            #[allow(clippy::let_unit_value)]
            fn trace(&self, #tracer: &mut #krate::Tracer) {
                #body
            }
            const MAY_CONTAIN_GC: bool = #may;
        }
    })
}
