#!/usr/bin/env python3
"""Generates the benchmark's runbooks, Makefiles and Ansible playbooks.

Each subcommand writes one file; the same subcommand with the same arguments always writes
the same bytes, so runs of the benchmark compare like with like.

  gen.py mix N OUT            a runbook of N steps: shell and file steps, fan-out and
                              fan-in through `needs`, one gate every 50 steps
  gen.py chain N OUT          a runbook of N `true` shell steps, each needing the previous
  gen.py make-chain N OUT     a Makefile running the same N `true` commands in the same order
  gen.py make-chain-sh N OUT  the same, but each recipe is `true;` so make runs it through
                              /bin/sh -c as rb6 does (make execs a plain `true` directly)
  gen.py ansible N OUT        a playbook of N `true` command tasks on localhost
  gen.py sleeps N SEC OUT     a runbook of N independent `sleep SEC` steps
  gen.py make-sleeps N SEC OUT  a Makefile of the same N independent sleeps
"""

import sys

GROUP = 10  # steps per group in the mix: a root, six shell steps, two files, a join


def header(name, description):
    return f'runbook "{name}" {{\n  description = "{description}"\n}}\n\n'


def mix(count):
    """Builds a runbook of `count` steps shaped like a real one, in groups of ten.

    Each group has a directory step (the fan-out root, needing the previous group's join),
    six shell steps needing the root, two file steps needing two shell steps each, and a
    join shell step needing the other eight (fan-in). Every fifth group ends with a gate
    after its join, and the next group's root needs that gate.
    """
    out = [header("bench-mix", f"{count} generated steps"),
           'variable "dir" { default = "/tmp/rb6-bench-mix" }\n',
           'variable "release" { default = "2024.06.1" }\n\n']
    written = 0
    previous = None
    group = 0
    while written < count:
        g = group
        root = f"g{g}_dir"
        needs = f"\n  needs = [{previous}]" if previous else ""
        out.append(f'step "{root}" {{\n  description = "group {g} directory"{needs}\n'
                   f'  directory {{ path = "${{var.dir}}/g{g}" }}\n}}\n\n')
        members = []
        written += 1
        for i in range(6):
            if written >= count:
                break
            name = f"g{g}_sh{i}"
            undo = ('  undo { shell { run = "rm -f ${var.dir}/g%d/sh%d.done" } }\n' % (g, i)
                    if i % 2 == 0 else '  undo { none = "only prints" }\n')
            out.append(f'step "{name}" {{\n  needs = [{root}]\n  timeout = "30s"\n'
                       f'  shell {{ run = "echo ${{var.release}} > ${{var.dir}}/g{g}/sh{i}.done" }}\n'
                       f'{undo}}}\n\n')
            members.append(name)
            written += 1
        for i in range(2):
            if written >= count:
                break
            name = f"g{g}_file{i}"
            deps = ", ".join(members[2 * i:2 * i + 2]) or root
            out.append(f'step "{name}" {{\n  needs = [{deps}]\n  file {{\n'
                       f'    path    = "${{var.dir}}/g{g}/config{i}.conf"\n'
                       f'    content = "release=${{var.release}}\\ngroup={g}\\n"\n'
                       f'    mode    = "0644"\n  }}\n}}\n\n')
            members.append(name)
            written += 1
        if written >= count:
            break
        join = f"g{g}_join"
        out.append(f'step "{join}" {{\n  needs = [{", ".join(members) or root}]\n'
                   f'  shell {{ run = "cat ${{var.dir}}/g{g}/*.conf > /dev/null" }}\n'
                   f'  undo {{ none = "reads only" }}\n}}\n\n')
        written += 1
        previous = join
        if g % 5 == 4 and written < count:
            gate = f"g{g}_ready"
            out.append(f'gate "{gate}" {{\n  needs = [{join}]\n'
                       f'  file_check {{\n    path = "${{var.dir}}/g{g}/config0.conf"\n'
                       f'    contains = "release=${{var.release}}"\n  }}\n}}\n\n')
            written += 1
            previous = gate
        group += 1
    return "".join(out)


def chain(count):
    out = [header("bench-chain", f"{count} no-op shell steps in a chain")]
    for i in range(count):
        needs = f"\n  needs = [s{i - 1}]" if i else ""
        out.append(f'step "s{i}" {{{needs}\n  shell {{ run = "true" }}\n  undo {{ none = "no-op" }}\n}}\n')
    return "".join(out)


def make_chain(count, recipe="true"):
    names = [f"s{i}" for i in range(count)]
    out = [f".PHONY: all {' '.join(names)}\nall: {names[-1]}\n"]
    for i, name in enumerate(names):
        dep = f" {names[i - 1]}" if i else ""
        out.append(f"{name}:{dep}\n\t{recipe}\n")
    return "".join(out)


def make_chain_sh(count):
    return make_chain(count, "true;")


def ansible(count):
    out = ["- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"]
    for i in range(count):
        out.append(f"    - name: s{i}\n      ansible.builtin.command: \"true\"\n      changed_when: false\n")
    return "".join(out)


def sleeps(count, seconds):
    out = [header("bench-sleeps", f"{count} independent sleeps")]
    for i in range(count):
        out.append(f'step "z{i}" {{\n  shell {{ run = "sleep {seconds}" }}\n  undo {{ none = "no-op" }}\n}}\n')
    return "".join(out)


def make_sleeps(count, seconds):
    names = [f"z{i}" for i in range(count)]
    out = [f".PHONY: all {' '.join(names)}\nall: {' '.join(names)}\n"]
    for name in names:
        out.append(f"{name}:\n\tsleep {seconds}\n")
    return "".join(out)


def main(argv):
    kind, args, out = argv[1], argv[2:-1], argv[-1]
    builders = {"mix": mix, "chain": chain, "make-chain": make_chain, "make-chain-sh": make_chain_sh, "ansible": ansible,
                "sleeps": sleeps, "make-sleeps": make_sleeps}
    if kind not in builders:
        sys.exit(f"unknown kind {kind!r}; one of: {', '.join(builders)}")
    numbers = [int(args[0])] + args[1:]
    with open(out, "w", encoding="utf-8") as file:
        file.write(builders[kind](*numbers))


if __name__ == "__main__":
    main(sys.argv)
