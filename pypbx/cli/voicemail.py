"""``pypbx voicemail``: mailboxes and messages (pypbx.voicemail).

Every command works on the database; the running PBX reads it on each call, so
changes apply to the next call.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from pypbx import voicemail as V
from pypbx.cli.context import config_option, on_db, shown
from pypbx.cli.filters import found, remove_unused, require
from pypbx.cli.output import done, echo_json, json_option, table, ts
from pypbx.db import Database
from pypbx.errors import PbxError, PbxUsageError, did_you_mean


@click.group("voicemail")
@config_option
def voicemail() -> None:
    """Mailboxes and messages."""


@voicemail.command("box")
@config_option
@click.argument("box")
@click.option("--number", default=None, help="Dial this number to leave a message in BOX (e.g. 801).")
@click.option(
    "--on-no-answer/--no-on-no-answer",
    default=None,
    help="Extension BOX not answering (or not registered) -> its mailbox.",
)
@click.option("--max-seconds", type=float, default=None, help="Longest message (default 120).")
@click.option(
    "--email",
    default=None,
    metavar="ADDR[,ADDR]",
    help="E-mail new messages to these addresses ('' = none; see pypbx notify).",
)
@click.option("--remove", is_flag=True, help="Remove the mailbox (its messages stay listed).")
@json_option
@click.pass_context
def vm_box(
    ctx: click.Context,
    box: str,
    number: str | None,
    on_no_answer: bool | None,
    max_seconds: float | None,
    email: str | None,
    remove: bool,
    as_json: bool,
) -> None:
    """Create or change mailbox BOX (an extension number or a queue name)."""

    if remove:
        require(ctx, "mailbox", box)
        on_db(ctx, remove_unused, f"voicemail:{box}", V.remove_box, box)
        click.echo(f"Mailbox {box} removed.")
        return

    async def go(db: Database) -> V.VoicemailBox:
        if on_no_answer:  # an extension's unanswered calls: the extension must exist (it can always come first)
            exts = [r["number"] for r in await db.list_extension_rows()]
            if box not in exts:
                raise PbxUsageError(
                    f"--on-no-answer: no extension {box}{did_you_mean(box, exts)}; add it first (pypbx ext add {box})"
                )
        try:
            old = await V.get_box(db, box)
            old_number, old_nna, old_max = old["number"], old["on_no_answer"], old["max_seconds"]
        except V.VoicemailError:
            old_number, old_nna, old_max = None, False, V.DEFAULT_MAX_SECONDS
        return await V.set_box(
            db,
            box,
            number=(number or None) if number is not None else old_number,
            on_no_answer=old_nna if on_no_answer is None else on_no_answer,
            max_seconds=old_max if max_seconds is None else max_seconds,
            email=email,
        )

    b = on_db(ctx, go)
    if as_json:
        echo_json(b)
        return
    click.echo(
        f"Mailbox {b['box']}: number {b['number'] or '-'}, on no answer "
        f"{'yes' if b['on_no_answer'] else 'no'}, up to {b['max_seconds']:g} s"
        + (f", e-mail {b['email']}." if b.get("email") else ".")
    )


@voicemail.command("boxes")
@config_option
@json_option
@click.pass_context
def vm_boxes(ctx: click.Context, as_json: bool) -> None:
    """List mailboxes."""

    rows = on_db(ctx, V.list_boxes)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No mailboxes. Add one with: pypbx voicemail box 1001 --on-no-answer")
        return
    click.echo(
        table(
            ["BOX", "NUMBER", "ON NO ANSWER", "MAX", "MESSAGES", "NEW", "E-MAIL"],
            [
                [
                    r["box"],
                    r["number"] or "-",
                    "yes" if r["on_no_answer"] else "no",
                    f"{r['max_seconds']:g}s",
                    r["messages"],
                    r["new"],
                    r.get("email") or "-",
                ]
                for r in rows
            ],
        )
    )


@voicemail.command("list")
@config_option
@click.argument("box", required=False)
@click.option("--new", "new_only", is_flag=True, help="Only messages not heard yet.")
@json_option
@click.pass_context
def vm_list(ctx: click.Context, box: str | None, new_only: bool, as_json: bool) -> None:
    """Messages in BOX (all boxes without BOX), oldest first."""

    if box is not None:
        on_db(ctx, found, V.get_box, box)  # an unknown mailbox: exit 2 (an empty one lists nothing, exit 0)
    rows = on_db(ctx, V.list_messages, box, new_only)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No messages.")
        return
    click.echo(
        table(
            ["ID", "BOX", "RECEIVED", "CALLER", "DID", "LENGTH", "HEARD"],
            [
                [
                    r["id"],
                    r["box"],
                    ts(r["received_at"]),
                    shown(r["caller"]),
                    r["did"] or "-",
                    f"{(r['seconds'] or 0):.1f}s",
                    "yes" if r["heard"] else "NEW",
                ]
                for r in rows
            ],
        )
    )


@voicemail.command("play")
@config_option
@click.argument("msg_id", metavar="ID")
@click.option(
    "--to",
    "to",
    type=click.Path(),
    default=None,
    help="Copy the message's WAV to this file (or into this directory).",
)
@click.option("--speaker", is_flag=True, help="Play it on this machine's sound output (needs aplay or paplay).")
@json_option
@click.pass_context
def vm_play(ctx: click.Context, msg_id: str, to: str | None, speaker: bool, as_json: bool) -> None:
    """Print the path of message ID's WAV file (8 kHz mono), for a player or a script.

    A PBX is usually a headless box: copy the message elsewhere with --to FILE, or play it
    on this machine's speaker with --speaker. Examples:

        pypbx voicemail play 12 --to /home/reception/message-12.wav

        pypbx voicemail play 12 --speaker
    """

    path = Path(on_db(ctx, found, V.get_message, msg_id)["path"])  # no such message: exit 2
    result: dict[str, object] = {"id": msg_id, "path": str(path), "copied_to": None, "played": False}
    if to is None and not speaker:
        done(as_json, result, str(path))
        return
    if not path.is_file():
        raise PbxError(f"message {msg_id}'s audio is gone ({path} does not exist)")
    if to is not None:
        dst = Path(to).expanduser()
        if dst.is_dir():
            dst = dst / path.name
        try:
            shutil.copyfile(path, dst)
        except OSError as e:
            raise PbxError(f"cannot write {dst}: {e.strerror or e}") from None
        result["copied_to"] = str(dst)
        if not as_json:
            click.echo(f"Message {msg_id} copied to {dst}")
    if speaker:
        player = next((shutil.which(p) for p in ("paplay", "aplay") if shutil.which(p)), None)
        if player is None:
            raise PbxError("no audio player here (install alsa-utils for aplay); use --to FILE to copy it instead")
        res = subprocess.run([player, str(path)], capture_output=True, check=False)
        if res.returncode != 0:
            detail = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise PbxError(f"{Path(player).name} failed" + (f": {detail[-1]}" if detail else ""))
        result["played"] = True
    if as_json:
        echo_json(result)


@voicemail.command("heard")
@config_option
@click.argument("msg_id", metavar="ID")
@click.option("--unheard", is_flag=True, help="Mark it new again.")
@json_option
@click.pass_context
def vm_heard(ctx: click.Context, msg_id: str, unheard: bool, as_json: bool) -> None:
    """Mark message ID heard."""

    on_db(ctx, found, V.get_message, msg_id)  # no such message: exit 2
    m = on_db(ctx, V.mark_heard, msg_id, not unheard)
    done(as_json, m, f"Message {m['id']} marked {'new' if unheard else 'heard'}.")


@voicemail.command("delete")
@config_option
@click.argument("msg_id", metavar="ID")
@json_option
@click.pass_context
def vm_delete(ctx: click.Context, msg_id: str, as_json: bool) -> None:
    """Delete message ID (its audio and sidecar; the row stays for the books)."""

    on_db(ctx, found, V.get_message, msg_id)  # no such message: exit 2
    m = on_db(ctx, V.delete_message, msg_id)
    done(as_json, m, f"Message {m['id']} deleted.")
