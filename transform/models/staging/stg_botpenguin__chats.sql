{{ botpenguin_stage('chats', 'chat') }}
