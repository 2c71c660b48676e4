"""Statement parser: a request's text in, a list of typed statements out.

Why recursive descent rather than a grammar tool such as Lark: ksqlDB's grammar has many
non-reserved keywords that are also valid names (``KEY``, ``EMIT``, ``PARTITION``, ``SOURCE``,
``TABLES``...), so whether a word is a keyword depends on its position and on the next token or
two (``FROM s EMIT CHANGES`` vs ``FROM s emit``). Writing the parser by hand makes those
decisions explicit, and lets every failure carry ksqlDB-shaped messages and positions
(``line 2:74: Syntax Error`` / ``missing ')' at ','``) instead of a generic parser's.

The whole request is tokenised once, so line:column positions are relative to the request, as
in ksqlDB. Each statement keeps its exact source text, from its first token to its ``;``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal, TypeVar

from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.sql.cursor import is_identifier_token
from cart_pipeline.engine.sql.errors import ParseError
from cart_pipeline.engine.sql.expressions import ExpressionParser
from cart_pipeline.engine.sql.keywords import KEYWORDS
from cart_pipeline.engine.sql.lexer import Token, TokenKind, tokenize

__all__ = ["StatementParser", "parse_expression", "parse_statements", "parse_type"]

_Result = TypeVar("_Result")

_UNITS: dict[str, ast.TimeUnit] = {
    "MILLISECOND": "MILLISECONDS",
    "MILLISECONDS": "MILLISECONDS",
    "SECOND": "SECONDS",
    "SECONDS": "SECONDS",
    "MINUTE": "MINUTES",
    "MINUTES": "MINUTES",
    "HOUR": "HOURS",
    "HOURS": "HOURS",
    "DAY": "DAYS",
    "DAYS": "DAYS",
}
_JOIN_TYPES = ("JOIN", "INNER", "LEFT", "RIGHT", "FULL")
_UNSUPPORTED_STARTS = ("ALTER", "ASSERT", "PAUSE", "RESUME", "RUN")


def parse_statements(text: str) -> list[ast.ParsedStatement]:
    """Parse every statement of a request (``;``-separated; the last ``;`` may be omitted)."""
    return StatementParser(text).parse_all()


def parse_expression(text: str) -> ast.Expression:
    """Parse one expression, e.g. ``SUM(QTY) > 1``; nothing may follow it."""
    return StatementParser(text).parse_only(StatementParser.parse_expression)


def parse_type(text: str) -> ast.SqlType:
    """Parse one SQL type, e.g. ``MAP<STRING, ARRAY<INT>>``."""
    return StatementParser(text).parse_only(StatementParser.parse_type)


class StatementParser(ExpressionParser):
    def __init__(self, text: str) -> None:
        super().__init__(tokenize(text))
        self.text = text

    # -- entry points -----------------------------------------------------------------------

    def parse_all(self) -> list[ast.ParsedStatement]:
        parsed: list[ast.ParsedStatement] = []
        while self.current.kind is not TokenKind.EOF:
            first = self.current
            try:
                statement = self.parse_statement()
                if not self.at_end():
                    self.fail("")  # trailing input: ksqlDB prints no detail for it
            except ParseError as error:
                raise error.with_statement(self._statement_text_around(first)) from None
            except RecursionError:
                raise self._too_deep(first).with_statement(
                    self._statement_text_around(first)
                ) from None
            last = self.current if self.at_symbol(";") else self.tokens[self.index - 1]
            self.accept_symbol(";")
            parsed.append(
                ast.ParsedStatement(
                    self.text[first.start : last.end],
                    statement,
                    first.start,
                    last.end,
                    self.location(first),
                )
            )
        return parsed

    def parse_only(self, rule: Callable[[StatementParser], _Result]) -> _Result:
        try:
            result = rule(self)
            if self.current.kind is not TokenKind.EOF:
                self.fail("")
        except ParseError as error:
            raise error.with_statement(self.text.strip()) from None
        except RecursionError:
            raise self._too_deep(self.tokens[0]).with_statement(self.text.strip()) from None
        return result

    def _too_deep(self, first: Token) -> ParseError:
        """Pathologically nested input must still end in a ParseError, not a traceback."""
        return ParseError("Statement is nested too deeply to parse", first.line, first.column)

    def _statement_text_around(self, first: Token) -> str:
        """The failing statement's text: from its first token to the next ``;`` (or the end)."""
        index = self.index
        while index < len(self.tokens) - 1 and not self.tokens[index].is_symbol(";"):
            index += 1
        return self.text[first.start : self.tokens[index].end].strip()

    # -- statements -------------------------------------------------------------------------

    def parse_statement(self) -> ast.Statement:
        token = self.current
        if token.kind is TokenKind.WORD:
            word = token.value
            if word == "SELECT":
                return self.parse_query()
            handler = self._STATEMENT_HANDLERS.get(word)
            if handler is not None:
                return handler(self)
            if word in _UNSUPPORTED_STARTS:
                return self._unsupported(word)
        self.fail_unexpected()

    def _parse_create(self) -> ast.Statement:
        start = self.expect_word("CREATE")
        or_replace = self.accept_words("OR", "REPLACE")
        if self.at_word("SOURCE", "SINK") and self.peek().is_word("CONNECTOR"):
            return self._unsupported(f"CREATE {self.current.value} CONNECTOR", start)
        if self.at_word("TYPE") and not or_replace:
            return self._parse_register_type()
        is_source = self.accept_word("SOURCE") is not None
        kind = self._expect_source_kind()
        if_not_exists = self.accept_words("IF", "NOT", "EXISTS")
        location = self.location()
        name = self.expect_identifier()
        elements = self._parse_table_elements() if self.at_symbol("(") else ()
        properties = self._parse_with_properties()
        if not elements and not is_source and self.accept_word("AS"):
            query = self.parse_query()
            return ast.CreateAsSelect(
                kind, name, query, properties, or_replace, if_not_exists, location=location
            )
        return ast.CreateSource(
            kind,
            name,
            elements,
            properties,
            or_replace,
            if_not_exists,
            is_source,
            location=location,
        )

    def _expect_source_kind(self) -> ast.SourceKind:
        return "STREAM" if self.expect_word("STREAM", "TABLE").value == "STREAM" else "TABLE"

    def _parse_table_elements(self) -> tuple[ast.TableElement, ...]:
        self.expect_symbol("(")
        elements: list[ast.TableElement] = []
        while True:
            name = self.expect_identifier()
            sql_type = self.parse_type()
            constraint: ast.ColumnConstraint | None = None
            header_key: str | None = None
            if self.accept_words("PRIMARY", "KEY"):
                constraint = "PRIMARY KEY"
            elif self.accept_word("KEY", "HEADERS") is not None:
                constraint = "KEY" if self.tokens[self.index - 1].value == "KEY" else "HEADERS"
            elif self.at_word("HEADER") and self.peek().is_symbol("("):
                self.index += 2
                constraint, header_key = "HEADER", self.expect_string()
                self.expect_symbol(")")
            elements.append(ast.TableElement(name, sql_type, constraint, header_key))
            if self.accept_symbol(")"):
                return tuple(elements)
            if not self.accept_symbol(","):
                self.fail_expecting(["','", "')'"])

    def _parse_with_properties(self) -> tuple[ast.Property, ...]:
        if not self.accept_word("WITH"):
            return ()
        self.expect_symbol("(")
        properties: list[ast.Property] = []
        while True:
            if self.current.kind is TokenKind.STRING:
                name = self.advance().value
            else:
                name = self.expect_identifier()
            self.expect_symbol("=")
            properties.append(ast.Property(name, self.parse_literal()))
            if self.accept_symbol(")"):
                return tuple(properties)
            if not self.accept_symbol(","):
                self.fail_expecting(["','", "')'"])

    def _parse_register_type(self) -> ast.RegisterType:
        self.expect_word("TYPE")
        if_not_exists = self.accept_words("IF", "NOT", "EXISTS")
        name = self.expect_identifier()
        self.expect_word("AS")
        return ast.RegisterType(name, self.parse_type(), if_not_exists)

    def _parse_insert(self) -> ast.InsertInto | ast.InsertValues:
        self.expect_word("INSERT")
        self.expect_word("INTO")
        location = self.location()
        target = self.expect_identifier()
        if self.at_word("WITH", "SELECT"):
            properties = self._parse_with_properties()
            return ast.InsertInto(target, self.parse_query(), properties, location=location)
        columns: list[str] = []
        if self.accept_symbol("("):
            columns.append(self.expect_identifier())
            while self.accept_symbol(","):
                columns.append(self.expect_identifier())
            self.expect_symbol(")")
        if not self.at_word("VALUES"):
            self.fail_expecting(
                ["'VALUES'"] if columns else ["'('", "'SELECT'", "'VALUES'", "'WITH'"]
            )
        self.advance()
        self.expect_symbol("(")
        values = self._parse_list(self.parse_value_expression, ")")
        return ast.InsertValues(target, tuple(columns), values, location=location)

    def _parse_drop(self) -> ast.Statement:
        start = self.expect_word("DROP")
        if self.at_word("CONNECTOR"):
            return self._unsupported("DROP CONNECTOR", start)
        if self.accept_word("TYPE"):
            if_exists = self.accept_words("IF", "EXISTS")
            return ast.DropType(self.expect_identifier(), if_exists)
        kind = self._expect_source_kind()
        if_exists = self.accept_words("IF", "EXISTS")
        location = self.location()
        name = self.expect_identifier()
        delete_topic = self.accept_words("DELETE", "TOPIC")
        return ast.DropSource(kind, name, if_exists, delete_topic, location=location)

    def _parse_terminate(self) -> ast.TerminateQuery:
        self.expect_word("TERMINATE")
        if self.accept_word("ALL"):
            return ast.TerminateQuery(None)
        return ast.TerminateQuery(self.expect_identifier())

    def _parse_show(self) -> ast.Statement:
        start = self.expect_word("SHOW", "LIST")
        all_topics = self.accept_word("ALL") is not None
        if all_topics and not self.at_word("TOPICS"):
            self.fail_expecting(["'TOPICS'"])
        if self.at_word("SOURCE", "SINK", "CONNECTORS", "CONNECTOR"):
            return self._unsupported(f"{start.value} CONNECTORS", start)
        subjects = (
            "STREAMS",
            "TABLES",
            "QUERIES",
            "TOPICS",
            "PROPERTIES",
            "FUNCTIONS",
            "TYPES",
            "VARIABLES",
        )
        subject: ast.ShowSubject = self.expect_word(*subjects).value  # type: ignore[assignment]
        extended = subject in ("STREAMS", "TABLES", "QUERIES", "TOPICS") and bool(
            self.accept_word("EXTENDED")
        )
        return ast.ShowStatement(subject, extended, all_topics)

    def _parse_describe(self) -> ast.Statement:
        start = self.expect_word("DESCRIBE")
        extended = self.accept_word("EXTENDED") is not None
        after = self.peek()
        if self.at_word("STREAMS", "TABLES") and (
            after.is_word("EXTENDED") or after.is_symbol(";") or after.kind is TokenKind.EOF
        ):
            kind = self.advance().value
            extended = self.accept_word("EXTENDED") is not None or extended
            return ast.DescribeSources("STREAMS" if kind == "STREAMS" else "TABLES", extended)
        if self.at_word("FUNCTION") and self.at_identifier(1):
            self.advance()
            return ast.DescribeFunction(self.expect_identifier())
        if self.at_word("CONNECTOR") and self.at_identifier(1):
            return self._unsupported("DESCRIBE CONNECTOR", start)
        location = self.location()
        name = self.expect_identifier()
        extended = self.accept_word("EXTENDED") is not None or extended
        return ast.DescribeSource(name, extended, location=location)

    def _parse_set(self) -> ast.SetProperty:
        self.expect_word("SET")
        name = self.expect_string()
        self.expect_symbol("=")
        return ast.SetProperty(name, self.expect_string())

    def _parse_unset(self) -> ast.UnsetProperty:
        self.expect_word("UNSET")
        return ast.UnsetProperty(self.expect_string())

    def _parse_define(self) -> ast.DefineVariable:
        self.expect_word("DEFINE")
        name = self._expect_variable_name()
        self.expect_symbol("=")
        return ast.DefineVariable(name, self.expect_string())

    def _parse_undefine(self) -> ast.UndefineVariable:
        self.expect_word("UNDEFINE")
        return ast.UndefineVariable(self._expect_variable_name())

    def _expect_variable_name(self) -> str:
        """ksqlDB's variable names are plain IDENTIFIER tokens: no keywords, no quoting."""
        token = self.current
        if token.kind is TokenKind.WORD and token.value not in KEYWORDS:
            return self.advance().value
        self.fail_expecting(["IDENTIFIER"])

    def _parse_print(self) -> ast.PrintTopic:
        self.expect_word("PRINT")
        token = self.current
        if token.kind is TokenKind.STRING:
            topic = self.advance().value
        elif token.kind is TokenKind.WORD and is_identifier_token(token):
            topic = self.advance().text  # unquoted topic names keep their case
        else:
            topic = self.expect_identifier()
        from_beginning = self.accept_words("FROM", "BEGINNING")
        interval = self.expect_integer() if self.accept_word("INTERVAL", "SAMPLE") else None
        limit = self.expect_integer() if self.accept_word("LIMIT") else None
        return ast.PrintTopic(topic, from_beginning, interval, limit)

    def _parse_explain(self) -> ast.Explain:
        self.expect_word("EXPLAIN")
        if self.at_identifier() and (
            self.peek().kind is TokenKind.EOF or self.peek().is_symbol(";")
        ):
            return ast.Explain(query_id=self.expect_identifier())
        return ast.Explain(statement=self.parse_statement())

    def _unsupported(self, kind: str, start: Token | None = None) -> ast.UnsupportedStatement:
        """Skip to the end of the statement, keeping its text (without ``;``) for the refusal."""
        first = start or self.current
        if (
            start is None
            and first.value in ("ALTER", "ASSERT", "RUN")
            and self.peek().is_word(*KEYWORDS)
        ):
            kind = f"{first.value} {self.peek().value}"
        while not self.at_end():
            self.advance()
        return ast.UnsupportedStatement(kind, self.text[first.start : self.current.start].strip())

    _STATEMENT_HANDLERS: ClassVar[dict[str, Callable[[StatementParser], ast.Statement]]] = {
        "CREATE": _parse_create,
        "INSERT": _parse_insert,
        "DROP": _parse_drop,
        "TERMINATE": _parse_terminate,
        "SHOW": _parse_show,
        "LIST": _parse_show,
        "DESCRIBE": _parse_describe,
        "SET": _parse_set,
        "UNSET": _parse_unset,
        "DEFINE": _parse_define,
        "UNDEFINE": _parse_undefine,
        "PRINT": _parse_print,
        "EXPLAIN": _parse_explain,
    }

    # -- queries ----------------------------------------------------------------------------

    def parse_query(self) -> ast.Query:
        self.expect_word("SELECT")
        items = [self._parse_select_item()]
        while self.accept_symbol(","):
            items.append(self._parse_select_item())
        self.expect_word("FROM")
        relation = self._parse_relation()
        window = self._parse_window() if self.accept_word("WINDOW") else None
        where = self.parse_expression() if self.accept_word("WHERE") else None
        group_by = self._parse_grouping() if self.accept_words("GROUP", "BY") else None
        partition_by = self._parse_grouping() if self.accept_words("PARTITION", "BY") else None
        having = self.parse_expression() if self.accept_word("HAVING") else None
        emit: Literal["CHANGES", "FINAL"] | None = None
        if self.accept_word("EMIT"):
            emit = (
                "CHANGES" if self.expect_word("CHANGES", "FINAL").value == "CHANGES" else ("FINAL")
            )
        limit = self.expect_integer(allow_negative=True) if self.accept_word("LIMIT") else None
        return ast.Query(
            tuple(items), relation, window, where, group_by, partition_by, having, emit, limit
        )

    def _parse_select_item(self) -> ast.SelectItem:
        if self.accept_symbol("*"):
            return ast.AllColumns()
        if self.at_identifier() and self.peek().is_symbol(".") and self.peek(2).is_symbol("*"):
            source = self.expect_identifier()
            self.index += 2
            return ast.AllColumns(source)
        expression = self.parse_expression()
        if self.at_symbol("->") and self.peek().is_symbol("*"):
            self.index += 2
            return ast.StructAllFields(expression)
        alias = None
        if self.accept_word("AS") or self.at_identifier():
            alias = self.expect_identifier()
        return ast.SelectColumn(expression, alias)

    def _parse_relation(self) -> ast.Relation:
        left = self._parse_aliased_source()
        joins: list[ast.JoinedSource] = []
        while self.at_word(*_JOIN_TYPES):
            joins.append(self._parse_joined_source())
        return ast.Join(left, tuple(joins)) if joins else left

    def _parse_aliased_source(self) -> ast.AliasedSource:
        location = self.location()
        name = self.expect_identifier()
        alias = None
        if self.accept_word("AS") or (self.at_identifier() and not self._at_clause_keyword()):
            alias = self.expect_identifier()
        return ast.AliasedSource(name, alias, location=location)

    def _at_clause_keyword(self) -> bool:
        """``EMIT CHANGES`` / ``PARTITION BY`` start clauses, though both words can be names."""
        return (self.at_word("EMIT") and self.peek().is_word("CHANGES", "FINAL")) or (
            self.at_word("PARTITION") and self.peek().is_word("BY")
        )

    def _parse_joined_source(self) -> ast.JoinedSource:
        join_type: ast.JoinType = "INNER"
        if self.accept_word("LEFT"):
            join_type = "LEFT"
        elif self.accept_word("RIGHT"):
            join_type = "RIGHT"
        elif self.accept_word("FULL"):
            join_type = "FULL"
        else:
            self.accept_word("INNER")
        if join_type != "INNER":
            self.accept_word("OUTER")
        self.expect_word("JOIN")
        source = self._parse_aliased_source()
        within = self._parse_join_window() if self.accept_word("WITHIN") else None
        self.expect_word("ON")
        return ast.JoinedSource(join_type, source, self.parse_expression(), within)

    def _parse_join_window(self) -> ast.JoinWindow:
        if self.accept_symbol("("):
            before = self._parse_duration()
            self.expect_symbol(",")
            after = self._parse_duration()
            self.expect_symbol(")")
        else:
            before = after = self._parse_duration()
        grace = self._parse_duration() if self.accept_words("GRACE", "PERIOD") else None
        return ast.JoinWindow(before, after, grace)

    def _parse_window(self) -> ast.WindowExpression:
        if self.current.kind is TokenKind.WORD and self.current.value not in KEYWORDS:
            self.advance()  # ksqlDB's grammar allows (and ignores) a window name here
        kind_token = self.expect_word("TUMBLING", "HOPPING", "SESSION")
        self.expect_symbol("(")
        advance = None
        if kind_token.value == "SESSION":
            size = self._parse_duration()
        else:
            self.expect_word("SIZE")
            size = self._parse_duration()
            if kind_token.value == "HOPPING":
                self.expect_symbol(",")
                self.expect_word("ADVANCE")
                self.expect_word("BY")
                advance = self._parse_duration()
        retention = grace = None
        while self.accept_symbol(","):
            if self.accept_word("RETENTION"):
                retention = self._parse_duration()
            elif self.accept_words("GRACE", "PERIOD"):
                grace = self._parse_duration()
            else:
                self.fail_expecting(["'RETENTION'", "'GRACE'"])
        self.expect_symbol(")")
        kind: Literal["TUMBLING", "HOPPING", "SESSION"] = kind_token.value  # type: ignore[assignment]
        return ast.WindowExpression(kind, size, advance, retention, grace)

    def _parse_duration(self) -> ast.Duration:
        value = self.expect_integer()
        unit = self.expect_word(*_UNITS).value
        return ast.Duration(value, _UNITS[unit])

    def _parse_grouping(self) -> tuple[ast.Expression, ...]:
        """``a, b`` or ``(a, b)``: try the plain list first, as ksqlDB's grammar does."""
        start = self.index
        try:
            return self._parse_expression_list()
        except ParseError as plain_error:
            if not self.tokens[start].is_symbol("("):
                raise
            failed_at = self.index
            self.index = start + 1
            try:
                return self._parse_list(self.parse_value_expression, ")")
            except ParseError:
                if self.index < failed_at:
                    raise plain_error from None
                raise

    def _parse_expression_list(self) -> tuple[ast.Expression, ...]:
        items = [self.parse_value_expression()]
        while self.accept_symbol(","):
            items.append(self.parse_value_expression())
        return tuple(items)
