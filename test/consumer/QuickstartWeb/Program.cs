using QuickstartWeb;

var builder = WebApplication.CreateBuilder(args);
Quickstart.Register(builder);
builder.Services.AddScoped<Checkout>();

var app = builder.Build();
app.MapGet("/orders/{id:int}", async (int id, ShopContext db, Checkout checkout) => Results.Ok(await Quickstart.ReadAsync(db, id, checkout)));
app.Run();
