"""Model builders: each module has ``build(ctx: BuildContext) -> dict`` returning the manifest entry it wrote."""
