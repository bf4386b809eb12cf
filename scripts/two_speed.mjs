// The build-time half of "one source for each kernel path, two speeds" (docs/performance.md).
//
// A kernel path is a generator function or method whose declared return type is KGen<...>
// (src/kernel/sched.ts). For each one this TypeScript transformer emits three functions from
// the one source:
//
//   NAME$gen   the generator as written: what the explorer's Scheduler steps through, yield
//              point by yield point;
//   NAME$seq   the same body as a plain function: `yield* E` becomes __kseq.run(E) (E is
//              evaluated in the sequential mode, so a transformed callee returns its value at
//              once; a generator from anything else is driven to its end), a yielded value is
//              checked by __kseq.yielded (a block that can never be woken is the deadlock
//              runSync reports) and a preemption point is gone;
//   NAME       a wrapper with the original name and parameters: NAME$seq while a sequential
//              syscall runs (__kseq.on, set by the syscall layer), NAME$gen otherwise.
//
// Nothing else changes: a build without this transform (plain tsc) runs every path as a
// generator and behaves the same, only slower. Functions whose parameters are patterns are
// left alone. __kseq is the global object src/kernel/sched.ts defines.

import ts from "typescript";

const SEQ = "__kseq";

/** a KGen<...> return type, as written */
function isPathType(type) {
  return (
    type !== undefined &&
    ts.isTypeReferenceNode(type) &&
    ts.isIdentifier(type.typeName) &&
    type.typeName.text === "KGen"
  );
}

function simpleParams(params) {
  return params.every((p) => ts.isIdentifier(p.name));
}

/** `a, b, ...c` of the parameters, for forwarding */
function forwardArgs(f, params) {
  return params.map((p) =>
    p.dotDotDotToken ? f.createSpreadElement(f.createIdentifier(p.name.text)) : f.createIdentifier(p.name.text),
  );
}

/** the parameters without types and initializers (the wrapper forwards undefined, and the
 * called function applies its own defaults) */
function bareParams(f, params) {
  return params.map((p) =>
    f.createParameterDeclaration(undefined, p.dotDotDotToken, f.createIdentifier(p.name.text), undefined, undefined),
  );
}

function isFunctionLike(n) {
  return (
    ts.isFunctionDeclaration(n) ||
    ts.isFunctionExpression(n) ||
    ts.isArrowFunction(n) ||
    ts.isMethodDeclaration(n) ||
    ts.isGetAccessor(n) ||
    ts.isSetAccessor(n) ||
    ts.isConstructorDeclaration(n) ||
    ts.isClassDeclaration(n) ||
    ts.isClassExpression(n)
  );
}

/** `yield { kind: "preempt", ... }`: a preemption point, nothing in a sequential call */
function isPreemptLiteral(e) {
  return (
    e !== undefined &&
    ts.isObjectLiteralExpression(e) &&
    e.properties.some(
      (p) =>
        ts.isPropertyAssignment(p) &&
        ts.isIdentifier(p.name) &&
        p.name.text === "kind" &&
        ts.isStringLiteral(p.initializer) &&
        p.initializer.text === "preempt",
    )
  );
}

function seqBody(ctx, body) {
  const f = ctx.factory;
  const seqRef = (name) => f.createPropertyAccessExpression(f.createIdentifier(SEQ), name);
  const visit = (n) => {
    if (isFunctionLike(n)) return n;
    if (ts.isYieldExpression(n)) {
      const e = n.expression ? ts.visitNode(n.expression, visit) : undefined;
      if (!n.asteriskToken) {
        if (e === undefined || isPreemptLiteral(n.expression)) return f.createVoidZero();
        return f.createCallExpression(seqRef("yielded"), undefined, [e]);
      }
      // yield* preempt(...): a preemption point
      if (ts.isCallExpression(n.expression) && ts.isIdentifier(n.expression.expression)) {
        if (n.expression.expression.text === "preempt") return f.createVoidZero();
      }
      // yield* E: E is evaluated in the sequential mode, so a transformed callee returns its
      // value at once; a generator from anything else is driven to its end
      return f.createCallExpression(seqRef("run"), undefined, [e]);
    }
    return ts.visitEachChild(n, visit, ctx);
  };
  return ts.visitNode(body, visit);
}

/** The wrapper's body: `return __kseq.on ? seqCall : genCall;` */
function dispatch(f, seqCall, genCall) {
  return f.createBlock(
    [
      f.createReturnStatement(
        f.createConditionalExpression(
          f.createPropertyAccessExpression(f.createIdentifier(SEQ), "on"),
          undefined,
          seqCall,
          undefined,
          genCall,
        ),
      ),
    ],
    true,
  );
}

function withoutExport(mods) {
  return mods?.filter((m) => m.kind !== ts.SyntaxKind.ExportKeyword && m.kind !== ts.SyntaxKind.DefaultKeyword);
}

function transformFunction(ctx, fn) {
  const f = ctx.factory;
  const name = fn.name.text;
  const gen = f.updateFunctionDeclaration(
    fn,
    withoutExport(fn.modifiers),
    fn.asteriskToken,
    f.createIdentifier(`${name}$gen`),
    fn.typeParameters,
    fn.parameters,
    fn.type,
    fn.body,
  );
  const seq = f.createFunctionDeclaration(
    withoutExport(fn.modifiers),
    undefined,
    f.createIdentifier(`${name}$seq`),
    fn.typeParameters,
    fn.parameters,
    undefined,
    seqBody(ctx, fn.body),
  );
  const args = forwardArgs(f, fn.parameters);
  const wrapper = f.createFunctionDeclaration(
    fn.modifiers,
    undefined,
    f.createIdentifier(name),
    undefined,
    bareParams(f, fn.parameters),
    undefined,
    dispatch(
      f,
      f.createCallExpression(f.createIdentifier(`${name}$seq`), undefined, args),
      f.createCallExpression(f.createIdentifier(`${name}$gen`), undefined, args),
    ),
  );
  return [wrapper, gen, seq];
}

function transformMethod(ctx, m) {
  const f = ctx.factory;
  const name = m.name.text;
  const gen = f.updateMethodDeclaration(
    m,
    m.modifiers,
    m.asteriskToken,
    f.createIdentifier(`${name}$gen`),
    m.questionToken,
    m.typeParameters,
    m.parameters,
    m.type,
    m.body,
  );
  const seq = f.createMethodDeclaration(
    m.modifiers,
    undefined,
    f.createIdentifier(`${name}$seq`),
    undefined,
    m.typeParameters,
    m.parameters,
    undefined,
    seqBody(ctx, m.body),
  );
  const args = forwardArgs(f, m.parameters);
  const self = f.createThis();
  const wrapper = f.createMethodDeclaration(
    m.modifiers,
    undefined,
    f.createIdentifier(name),
    undefined,
    undefined,
    bareParams(f, m.parameters),
    undefined,
    dispatch(
      f,
      f.createCallExpression(f.createPropertyAccessExpression(self, `${name}$seq`), undefined, args),
      f.createCallExpression(f.createPropertyAccessExpression(self, `${name}$gen`), undefined, args),
    ),
  );
  return [wrapper, gen, seq];
}

/** The transformer factory for program.emit(..., { before: [twoSpeed] }). */
export function twoSpeed(ctx) {
  const visit = (n) => {
    if (
      ts.isFunctionDeclaration(n) &&
      n.asteriskToken &&
      n.name &&
      n.body &&
      isPathType(n.type) &&
      simpleParams(n.parameters) &&
      !n.modifiers?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)
    ) {
      return transformFunction(ctx, n);
    }
    if (
      ts.isMethodDeclaration(n) &&
      n.asteriskToken &&
      ts.isIdentifier(n.name) &&
      n.body &&
      isPathType(n.type) &&
      simpleParams(n.parameters)
    ) {
      return transformMethod(ctx, n);
    }
    if (ts.isSourceFile(n) || ts.isClassDeclaration(n) || ts.isClassExpression(n) || ts.isModuleBlock(n))
      return ts.visitEachChild(n, visit, ctx);
    // class bodies inside other statements (e.g. exported class declarations are handled
    // above); everything else keeps its generators
    return n;
  };
  return (sf) => ts.visitNode(sf, visit);
}
