"""One example per command, shown at the end of its ``--help`` (``Example: pypbx ...``).

Kept in one table rather than in each module's docstrings so that adding or renaming a
command shows up in one place; a command whose docstring already has its own ``Example:``
line keeps it. A unit test walks the click tree and requires an example for every command.
"""

from __future__ import annotations

import click

EXAMPLES: dict[str, str] = {
    # commands of other branches of issues 11/12 (applied when they exist)
    "audit": "pypbx audit --since today",
    "prompts say": "pypbx prompts say --id clinic_address --lang fr --text '12 rue de la Paix, Paris'",
    "token add": "pypbx token add --role wallboard --name 'waiting room TV'",
    "token list": "pypbx token list --json",
    "token remove": "pypbx token remove 3",
    "user add": "pypbx user add alice --role agent --agent alice",
    "user passwd": "pypbx user passwd alice",
    "user remove": "pypbx user remove alice",
    "user list": "pypbx user list --json",
    "user locale": "pypbx user locale alice fr",
    "agent add": "pypbx agent add alice --name 'Alice Martin' --skills general:5,results:3",
    "agent list": "pypbx agent list --json",
    "agent login": "pypbx agent login alice 1001",
    "agent logout": "pypbx agent logout alice",
    "agent pause": "pypbx agent pause alice --reason lunch",
    "agent remove": "pypbx agent remove alice --yes",
    "agent show": "pypbx agent show alice",
    "agent skills": "pypbx agent skills alice general:5,results:3",
    "agent unpause": "pypbx agent unpause alice",
    "call": "pypbx call 1001 0612345678",
    "callbacks": "pypbx callbacks --status pending --queue front",
    "callers import": "pypbx callers import patients.csv",
    "callers list": "pypbx callers list --limit 20",
    "callers show": "pypbx callers show 0612345678",
    "calls list": "pypbx calls list --date today --queue front --disposition abandoned_queue",
    "calls report": "pypbx calls report --date yesterday",
    "calls show": "pypbx calls show 3f2a9c1e",
    "did add": "pypbx did add 0144556677 --to queue:front --name 'Appointments line'",
    "did edit": "pypbx did edit 0144556677 --to ivr:main",
    "did list": "pypbx did list --json",
    "did remove": "pypbx did remove 0144556677",
    "events": "pypbx events --follow",
    "ext list": "pypbx ext list --json",
    "ext perms": "pypbx ext perms 1001 --allow local,national,mobile",
    "ext remove": "pypbx ext remove 1006 --yes",
    "ext show": "pypbx ext show 1001",
    "group list": "pypbx group list",
    "group remove": "pypbx group remove nurses",
    "group show": "pypbx group show nurses --json",
    "hours holiday": "pypbx hours holiday clinic --country FR --year 2027",
    "hours list": "pypbx hours list",
    "hours remove": "pypbx hours remove clinic",
    "hours set": "pypbx hours set clinic --week 'mon-fri 08:00-12:00 14:00-18:00' --tz Europe/Paris",
    "hours show": "pypbx hours show clinic",
    "init": "pypbx init --sip-port 5060 --demo",
    "ivr export": "pypbx ivr export main > main.toml",
    "ivr import": "pypbx ivr import main.toml",
    "ivr list": "pypbx ivr list",
    "ivr remove": "pypbx ivr remove main",
    "ivr show": "pypbx ivr show main --json",
    "missed call": "pypbx missed call 12 --from 1001",
    "missed claim": "pypbx missed claim 12 --by alice",
    "missed close": "pypbx missed close 12 --outcome reached --by alice",
    "missed list": "pypbx missed list --queue front",
    "missed show": "pypbx missed show 12",
    "notify list": "pypbx notify list --failed",
    "notify retry": "pypbx notify retry 7",
    "notify test": "pypbx notify test --email manager@clinic.example",
    "prompts import": "pypbx prompts import hello.wav --id welcome --lang en",
    "prompts list": "pypbx prompts list --lang en",
    "prompts remove": "pypbx prompts remove --id welcome --lang en",
    "queue add": "pypbx queue add front --skills general:1 --overflow-after 60 --overflow-to voicemail:front",
    "queue edit": "pypbx queue edit front --strategy round_robin",
    "queue list": "pypbx queue list --json",
    "queue remove": "pypbx queue remove front --yes",
    "queue show": "pypbx queue show front",
    "reason add": "pypbx reason add rdv 'Appointment booked' --digit 1",
    "reason edit": "pypbx reason edit rdv --label 'Appointment made'",
    "reason list": "pypbx reason list --all",
    "reason remove": "pypbx reason remove rdv",
    "reason set": "pypbx reason set 3f2a9c1e rdv",
    "recordings": "pypbx recordings --date today --agent alice",
    "report agents": "pypbx report agents --date today",
    "report callbacks": "pypbx report callbacks --since 2026-11-01 --until 2026-12-01",
    "report callers": "pypbx report callers --date yesterday",
    "report hours": "pypbx report hours --date today --queue front",
    "report lines": "pypbx report lines --date today",
    "report missed": "pypbx report missed --date today",
    "report queues": "pypbx report queues --date today --queue front --target 30",
    "report reasons": "pypbx report reasons --since 2026-11-01",
    "report summary": "pypbx report summary --date yesterday --json",
    "route add": "pypbx route add triage --tz Europe/Paris",
    "route list": "pypbx route list",
    "route remove": "pypbx route remove triage",
    "route rule": "pypbx route rule triage --if closed=clinic --to voicemail:front",
    "route show": "pypbx route show triage",
    "route test": "pypbx route test triage --caller 0612345678 --at '2026-12-07 19:00'",
    "route tz": "pypbx route tz triage Europe/Paris",
    "route unrule": "pypbx route unrule triage 2",
    "run": "pypbx run --config /etc/pypbx/pypbx.toml",
    "simulate": "pypbx simulate --preset small_gp --seed 1",
    "status": "pypbx status --json",
    "survey disable": "pypbx survey disable --queue front",
    "survey enable": "pypbx survey enable --queue front",
    "survey list": "pypbx survey list --unhappy",
    "survey report": "pypbx survey report",
    "trunk add": "pypbx trunk add provider --host sip.provider.example --username clinic --password 's3cret-pass'",
    "trunk edit": "pypbx trunk edit provider --format national",
    "trunk list": "pypbx trunk list",
    "trunk remove": "pypbx trunk remove provider",
    "trunk show": "pypbx trunk show provider",
    "voicemail box": "pypbx voicemail box 1001 --number 801 --email doctor@clinic.example",
    "voicemail boxes": "pypbx voicemail boxes",
    "voicemail delete": "pypbx voicemail delete 5b1c",
    "voicemail heard": "pypbx voicemail heard 5b1c",
    "voicemail list": "pypbx voicemail list 1001 --new",
    "voicemail play": "pypbx voicemail play 5b1c",
}


def add_examples(group: click.Group, prefix: str = "") -> None:
    """Append ``Example: ...`` to the help of every command below ``group`` that has none."""
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            add_examples(cmd, path + " ")
            continue
        example = EXAMPLES.get(path)
        if example and "Example:" not in (cmd.help or ""):
            cmd.help = (cmd.help or "").rstrip() + f"\n\nExample: {example}"
