<?php

return [
    'default' => 'none',
    'connections' => [],
    'redis' => [
        'client' => env('REDIS_CLIENT', 'phpredis'),
        'options' => [
            'cluster' => 'redis',
            // Laravel 8's default: <app name>_database_, REDIS_PREFIX overrides it.
            'prefix' => env('REDIS_PREFIX', env('APP_NAME', 'laravel') . '_database_'),
        ],
        'default' => [
            'url' => env('REDIS_URL'),
            'host' => env('REDIS_HOST', '127.0.0.1'),
            'password' => env('REDIS_PASSWORD'),
            'port' => env('REDIS_PORT', '6379'),
            'database' => env('REDIS_DB', '0'),
        ],
    ],
];
