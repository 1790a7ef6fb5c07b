//! `HelloSequence`: greets a list of cities one after the other (function chaining).

use azfn::durable::{ActivityContext, OrchestrationContext, TaskError};

/// The cities greeted when the input is empty (`null`).
pub const DEFAULT_CITIES: [&str; 5] = ["Tokyo", "Seattle", "London", "Cairo", "Lima"];

/// Calls `SayHello` for each city in turn and returns the greetings.
pub async fn hello_sequence(ctx: OrchestrationContext, cities: Option<Vec<String>>) -> Result<Vec<String>, TaskError> {
    let cities = cities.unwrap_or_else(|| DEFAULT_CITIES.iter().map(|c| c.to_string()).collect());
    let mut greetings = Vec::with_capacity(cities.len());
    for city in cities {
        let greeting: String = ctx.call_activity("SayHello", &city).await?;
        ctx.log(format_args!("greeted {city}"));
        greetings.push(greeting);
    }
    Ok(greetings)
}

/// `Hello {city}!`
pub async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, String> {
    if city.is_empty() {
        return Err("SayHello needs a city".into());
    }
    tracing::info!(%city, "saying hello");
    Ok(format!("Hello {city}!"))
}
