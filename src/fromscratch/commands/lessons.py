"""`fromscratch lessons list|solution`: the lessons' exercises and their reference solutions."""


def cmd_lessons_list(args) -> None:
    from ..exercises import list_exercises

    for name in list_exercises():
        print(name)


def cmd_lessons_solution(args) -> None:
    from ..exercises import solution_source

    print(solution_source(args.name))


def register(commands) -> None:
    lessons = commands.add_parser("lessons", help="the lessons' exercises and their solutions")
    verbs = lessons.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("list", help="list the exercises")
    p.set_defaults(func=cmd_lessons_list)
    p = verbs.add_parser("solution", help="print the reference solution of an exercise")
    p.add_argument("name")
    p.set_defaults(func=cmd_lessons_solution)
