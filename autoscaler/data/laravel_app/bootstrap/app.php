<?php
// The application container. Laravel writes its service and package manifests into
// bootstrap/cache; this app keeps them in a runtime directory outside the repository
// (APP_RUNTIME_DIR, default a per-user directory under the system temp dir).

$runtime = getenv('APP_RUNTIME_DIR') ?: sys_get_temp_dir() . '/autoscaler-laravel-app-' . posix_getuid();
if (!is_dir($runtime . '/cache')) {
    @mkdir($runtime . '/cache', 0700, true);
}
foreach ([
    'APP_SERVICES_CACHE' => $runtime . '/cache/services.php',
    'APP_PACKAGES_CACHE' => $runtime . '/cache/packages.php',
    'APP_CONFIG_CACHE' => $runtime . '/cache/config.php',
] as $name => $value) {
    if (getenv($name) === false) {
        putenv("$name=$value");
        $_ENV[$name] = $_SERVER[$name] = $value;
    }
}

$app = new Illuminate\Foundation\Application(dirname(__DIR__));
$app->useStoragePath($runtime);

$app->singleton(Illuminate\Contracts\Console\Kernel::class, App\Console\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, App\Exceptions\Handler::class);

return $app;
