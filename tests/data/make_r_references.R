# Reference values for the regression diagnostics and exact leave-one-out tests.
#
# Run from the project root:  Rscript tests/data/make_r_references.R
# (R >= 4; base R only). Writes tests/data/r/*.csv; the tests read those files
# and never need R. Inputs: tests/data/nist/*.csv (NIST StRD), tests/data/wls.csv
# and tests/data/binomial.csv (written by tests/data/make_inputs.py).
#
# Per data set and model, one CSV with a row per observation:
#   hat, residual, rstandard, rstudent, cooks, dffits, covratio,
#   dfbeta_<j>, dfbetas_<j> (R's sign: theta - theta_{-i}),
#   loo_<j> (coefficients refitted without the row),
# and <name>_coef.csv with the full-data coefficients. Intercept first.

options(digits = 17)
out_dir <- file.path("tests", "data", "r")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
fmt <- function(df) {
  df[] <- lapply(df, function(v) sprintf("%.17g", v))
  df
}
write_ref <- function(name, per_row, coef) {
  write.csv(fmt(per_row), file.path(out_dir, paste0(name, ".csv")),
            row.names = FALSE, quote = FALSE)
  write.csv(fmt(data.frame(t(coef))), file.path(out_dir, paste0(name, "_coef.csv")),
            row.names = FALSE, quote = FALSE)
}

lm_reference <- function(name, X, y, w = NULL, intercept = TRUE) {
  X <- as.matrix(X)
  if (intercept) X <- cbind("(Intercept)" = 1, X)
  fit <- if (is.null(w)) lm(y ~ 0 + X) else lm(y ~ 0 + X, weights = w)
  k <- ncol(X)
  names <- paste0("b", seq_len(k) - 1)
  per_row <- data.frame(
    hat = hatvalues(fit), residual = residuals(fit),
    rstandard = rstandard(fit), rstudent = rstudent(fit),
    cooks = cooks.distance(fit), dffits = dffits(fit), covratio = covratio(fit))
  dfb <- dfbeta(fit); colnames(dfb) <- paste0("dfbeta_", names)
  dfbs <- dfbetas(fit); colnames(dfbs) <- paste0("dfbetas_", names)
  loo <- t(sapply(seq_along(y), function(i) {
    refit <- if (is.null(w)) lm(y[-i] ~ 0 + X[-i, , drop = FALSE])
             else lm(y[-i] ~ 0 + X[-i, , drop = FALSE], weights = w[-i])
    coef(refit)
  }))
  if (k == 1) loo <- t(loo)
  colnames(loo) <- paste0("loo_", names)
  write_ref(name, cbind(per_row, dfb, dfbs, loo), coef(fit))
}

# Ridge with a free intercept as least squares on augmented data: the rows
# sqrt(alpha) e_j (intercept column 0, target 0) add alpha ||w||^2. Only the
# first n rows are observations: hat values and leave-one-out refits.
ridge_reference <- function(name, X, y, alpha, w = NULL) {
  X <- cbind(1, as.matrix(X))
  p <- ncol(X) - 1
  aug <- cbind(0, sqrt(alpha) * diag(p))
  n <- length(y)
  wa <- if (is.null(w)) rep(1, n + p) else c(w, rep(1, p))
  Xa <- rbind(X, aug); ya <- c(y, rep(0, p))
  fit <- lm(ya ~ 0 + Xa, weights = wa)
  names <- paste0("b", 0:p)
  loo <- t(sapply(seq_len(n), function(i) coef(lm(ya[-i] ~ 0 + Xa[-i, ], weights = wa[-i]))))
  colnames(loo) <- paste0("loo_", names)
  per_row <- data.frame(hat = hatvalues(fit)[1:n], residual = (ya - fitted(fit))[1:n])
  write_ref(name, cbind(per_row, loo), coef(fit))
}

glm_reference <- function(name, X, y, w = NULL) {
  X <- cbind("(Intercept)" = 1, as.matrix(X))
  ctrl <- glm.control(epsilon = 1e-14, maxit = 100)
  wt <- if (is.null(w)) rep(1, length(y)) else w
  # binomial with non-integer prior weights: the weighted log-likelihood
  fit <- suppressWarnings(glm(y ~ 0 + X, family = binomial, weights = wt, control = ctrl))
  k <- ncol(X)
  names <- paste0("b", seq_len(k) - 1)
  infl <- influence(fit)
  per_row <- data.frame(
    hat = hatvalues(fit),
    pearson = residuals(fit, type = "pearson"),
    deviance = residuals(fit, type = "deviance"),
    rstandard_deviance = rstandard(fit, type = "deviance"),
    rstandard_pearson = rstandard(fit, type = "pearson"),
    rstudent = rstudent(fit),
    cooks = cooks.distance(fit))
  dfb <- dfbeta(fit); colnames(dfb) <- paste0("dfbeta_", names)
  loo <- t(sapply(seq_along(y), function(i) {
    coef(suppressWarnings(glm(y[-i] ~ 0 + X[-i, ], family = binomial,
                              weights = wt[-i], control = ctrl)))
  }))
  colnames(loo) <- paste0("loo_", names)
  write_ref(name, cbind(per_row, dfb, loo), coef(fit))
}

nist <- function(file) read.csv(file.path("tests", "data", "nist", file))
d <- nist("longley.csv");  lm_reference("longley", d[, -1], d$y)
d <- nist("norris.csv");   lm_reference("norris", d["x"], d$y)
d <- nist("pontius.csv");  lm_reference("pontius", cbind(x = d$x, x2 = d$x^2), d$y)
d <- nist("noint1.csv");   lm_reference("noint1", d["x"], d$y, intercept = FALSE)
d <- nist("noint2.csv");   lm_reference("noint2", d["x"], d$y, intercept = FALSE)

d <- read.csv(file.path("tests", "data", "wls.csv"))
X <- d[, c("x1", "x2", "x3")]
lm_reference("wls", X, d$y, w = d$w)
lm_reference("ols", X, d$y)
ridge_reference("ridge", X, d$y, alpha = 1.5)
ridge_reference("ridge_weighted", X, d$y, alpha = 1.5, w = d$w)

d <- read.csv(file.path("tests", "data", "binomial.csv"))
X <- d[, 2:6]
glm_reference("binomial", X, d$y)
glm_reference("binomial_weighted", X, d$y, w = d$w)
