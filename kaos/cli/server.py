"""`kaos server start|stop`: run the API server in the foreground or in the background."""

from __future__ import annotations

import os

import typer

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS


@app.command()
def start(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="address to bind (127.0.0.1: this machine only)"
    ),
    port: int | None = typer.Option(None, "--port"),
    store: str | None = typer.Option(None, "--store", help="a folder or s3://BUCKET/PREFIX"),
    catalog: str | None = typer.Option(
        None,
        "--catalog",
        help="a SQLite file (default KAOS_HOME/catalog.db) or postgresql://USER:PASSWORD@HOST/DB",
        envvar="KAOS_CATALOG",
    ),
    s3_endpoint_url: str | None = typer.Option(
        None, "--s3-endpoint-url", help="for MinIO and other S3"
    ),
    executor: str | None = typer.Option(None, "--executor", help="local (default), docker or ray"),
    base_image: str | None = typer.Option(
        None, "--base-image", help="BASE_IMAGE for docker builds"
    ),
    token: str | None = typer.Option(
        None, "--token", help="require this bearer token (TOKEN or USER:TOKEN)", envvar="KAOS_TOKEN"
    ),
    tokens_file: str | None = typer.Option(None, "--tokens-file", help="lines of 'user token'"),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to train on (default: a local instance)"
    ),
    no_sandbox: bool = typer.Option(
        False, "--no-sandbox", help="run train scripts without bubblewrap (local, ray)"
    ),
    background: bool = typer.Option(
        False, "--background", help="detach; stop with 'kaos server stop'"
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="allow a non-loopback --host without tokens (anyone can deploy)"
    ),
) -> None:
    """Start a kaos server (settings also from KAOS_* environment variables)."""
    from kaos.cli.render import echo
    from kaos.config import DEFAULT_PORT

    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "store": store,
            "catalog": catalog,
            "s3_endpoint_url": s3_endpoint_url,
            "executor": executor,
            "base_image": base_image,
            "ray_address": ray_address,
            "token": token,
            "tokens_file": tokens_file,
            "insecure": insecure or None,
            "sandbox": False if no_sandbox else None,
        }.items()
        if v is not None
    }
    if background:
        from kaos.server.run import refuse_if_running

        refuse_if_running()  # before the child: its failure would say less
        if token:  # to the child through its environment: argv is visible to every user
            os.environ["KAOS_TOKEN"] = token
        if catalog:  # a PostgreSQL URL may hold a password: the environment too
            os.environ["KAOS_CATALOG"] = catalog
        args = []
        for key in (
            "store",
            "s3_endpoint_url",
            "executor",
            "base_image",
            "ray_address",
            "tokens_file",
        ):
            if key in overrides:
                args += [f"--{key.replace('_', '-')}", str(overrides[key])]
        if insecure:
            args.append("--insecure")
        if no_sandbox:
            args.append("--no-sandbox")
        port_used = port or int(os.environ.get("KAOS_PORT") or DEFAULT_PORT)
        from kaos.client.local import start_background_server

        reach = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # every address: this one too
        reach = f"[{reach}]" if ":" in reach else reach
        pid = start_background_server(f"http://{reach}:{port_used}", args, host=host)
        echo(f"kaos server running at http://{host}:{port_used} (pid {pid})")
        return
    from kaos.server.run import serve

    serve(overrides)


@app.command()
def stop() -> None:
    """Stop the background server started from this KAOS_HOME."""
    from kaos.cli.render import echo
    from kaos.server.run import stop as stop_server

    pid = stop_server()
    echo("kaos server was not running" if pid is None else f"kaos server stopped (pid {pid})")
