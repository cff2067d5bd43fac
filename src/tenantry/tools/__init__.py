"""The tools around the service: the catalog audit, the cross-tenant prober, the benchmark, the
seeder and the development server. Nothing on the request path imports them."""
