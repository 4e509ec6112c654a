//! The `#[wasmjob_sdk::job]` attribute macro. Use it through `wasmjob-sdk`,
//! which documents it; this crate's output refers to `::wasmjob_sdk`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Signature, Type};

/// The shape every job function has, quoted in error messages.
const SHAPE: &str = "fn NAME(input: Input) -> Result<Output, wasmjob_sdk::JobError>";

/// Marks the function that runs the job: see `wasmjob_sdk::job`.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item = TokenStream2::from(item);
    let item_fn: ItemFn = match syn::parse2(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let message = format!("#[job] goes on a function: `{SHAPE}`");
            return Error::new_spanned(item, message).to_compile_error().into();
        }
    };
    match expand(attr, &item_fn) {
        Ok(tokens) => tokens.into(),
        // Keep the function so that the only error is ours.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item_fn).into()
        }
    }
}

/// The function as written, then the component export that calls it.
fn expand(attr: TokenStream2, item_fn: &ItemFn) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(Error::new_spanned(attr, "#[job] takes no arguments"));
    }
    let sig = &item_fn.sig;
    let input_type = check_signature(sig)?;
    let return_type = check_return_type(sig)?;
    let name = &sig.ident;
    // Type errors point at the type they are about: an input that is not
    // `Deserialize` at the input type; a wrong `Result` alias or an output
    // that is not `Serialize` at the return type.
    let decode = quote_spanned!(input_type.span()=> ::wasmjob_sdk::__private::decode);
    let handler = quote_spanned!(return_type.span()=> #name);
    let encode = quote_spanned!(return_type.span()=> ::wasmjob_sdk::__private::encode);
    Ok(quote! {
        #item_fn

        #[doc(hidden)]
        #[allow(unsafe_code, non_camel_case_types, missing_docs, unreachable_pub)]
        const _: () = {
            struct __WasmjobJob;

            impl ::wasmjob_sdk::__private::Guest for __WasmjobJob {
                fn run(
                    info: ::wasmjob_sdk::__private::JobInfo,
                    input: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<u8>,
                    ::wasmjob_sdk::__private::JobError,
                > {
                    ::wasmjob_sdk::__private::run(info, input, #decode, #handler, #encode)
                }
            }

            ::wasmjob_sdk::__private::export!(__WasmjobJob);
        };
    })
}

/// Rejects what a job function cannot be: async, unsafe, generic, a method,
/// or anything but one owned input argument. Returns the input's type.
fn check_signature(sig: &Signature) -> syn::Result<&Type> {
    if let Some(asyncness) = &sig.asyncness {
        return Err(Error::new_spanned(
            asyncness,
            "a job function cannot be `async`: the host calls it synchronously; \
             remove `async` (and any `.await`)",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(Error::new_spanned(
            unsafety,
            "a job function cannot be `unsafe`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &sig.generics,
            format!(
                "a job function cannot be generic: its input and output types \
                 must be concrete, as in `{SHAPE}`"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new_spanned(
            variadic,
            "a job function cannot be variadic",
        ));
    }
    let mut inputs = sig.inputs.iter();
    let input = match inputs.next() {
        None => {
            return Err(Error::new(
                sig.paren_token.span.join(),
                format!(
                    "a job function takes one argument, its input decoded from JSON: \
                     `{SHAPE}`; for a job without input, take `()` or \
                     `serde::de::IgnoredAny`"
                ),
            ));
        }
        Some(FnArg::Receiver(receiver)) => {
            return Err(Error::new_spanned(
                receiver,
                format!("a job function cannot take `self`: write a free function `{SHAPE}`"),
            ));
        }
        Some(FnArg::Typed(input)) => input,
    };
    let rest: Vec<&FnArg> = inputs.collect();
    if !rest.is_empty() {
        return Err(Error::new_spanned(
            quote!(#(#rest),*),
            "a job function takes exactly one argument, its input decoded from JSON; \
             put several values in one struct that derives `Deserialize`",
        ));
    }
    match &*input.ty {
        Type::ImplTrait(ty) => Err(Error::new_spanned(
            ty,
            "a job function cannot be generic: name a concrete input type",
        )),
        Type::Reference(ty) => Err(Error::new_spanned(
            ty,
            "a job function's input is decoded into an owned value: take it by value \
             (e.g. `String` rather than `&str`)",
        )),
        ty => Ok(ty),
    }
}

/// Checks the return type looks like `Result<Output, JobError>` and returns
/// it. A one-argument `Result<T>` alias is let through, for the compiler to
/// check.
fn check_return_type(sig: &Signature) -> syn::Result<&Type> {
    let wrong = |tokens: &dyn ToTokens| {
        Error::new_spanned(
            tokens,
            format!(
                "a job function must return `Result<Output, wasmjob_sdk::JobError>`: `{SHAPE}`"
            ),
        )
    };
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => {
            return Err(Error::new(
                close_paren_span(sig),
                format!(
                    "a job function must return `Result<Output, wasmjob_sdk::JobError>`: \
                     `{SHAPE}`; return `Ok(())` for no output"
                ),
            ));
        }
    };
    let Type::Path(path) = ty else {
        return Err(wrong(ty));
    };
    let Some(last) = path.path.segments.last() else {
        return Err(wrong(ty));
    };
    if last.ident != "Result" {
        return Err(wrong(ty));
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Err(wrong(ty));
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [_] => Ok(ty),
        [_, error] if is_job_error(error) => Ok(ty),
        [_, error] => Err(Error::new_spanned(
            error,
            "the error type of a job function must be `wasmjob_sdk::JobError`; \
             `?` converts other errors into it (retryable), and \
             `wasmjob_sdk::ResultExt::fatal` marks them fatal",
        )),
        _ => Err(wrong(ty)),
    }
}

/// Whether `ty` is a path ending in `JobError`.
fn is_job_error(ty: &Type) -> bool {
    matches!(ty, Type::Path(path)
        if path.path.segments.last().is_some_and(|s| s.ident == "JobError" && s.arguments.is_empty()))
}

/// The span of the `)` that closes the argument list.
fn close_paren_span(sig: &Signature) -> Span {
    sig.paren_token.span.close()
}
